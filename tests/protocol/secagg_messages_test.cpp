#include "shoal/protocol/secagg_messages.h"

#include <catch2/catch.hpp>

#include "shoal/protocol/round_messages.h"

using namespace shoal::protocol;

namespace {

template <typename M>
Decoded<M> round_trip(const M& message, std::vector<zmq::message_t> payloads = {}) {
  auto envelope = decode_envelope(encode(message, std::move(payloads)), Limits{});
  REQUIRE(envelope);
  return decode<M>(*envelope);
}

// An envelope of type M whose header is written by `write`: for fields no struct would produce.
template <typename M, typename Write>
Decoded<M> decode_written(Write write) {
  HeaderWriter header;
  write(header);
  auto envelope = decode_envelope(encode_envelope(M::kType, header), Limits{});
  REQUIRE(envelope);
  return decode<M>(*envelope);
}

}  // namespace

TEST_CASE("secure-round messages round-trip every field") {
  AdvertiseKeys advertise{4, {}, {}, {}};
  advertise.cipher_key[0] = 1;
  advertise.mask_key[31] = 2;
  advertise.signature[63] = 3;
  auto keys = round_trip(advertise);
  REQUIRE(keys);
  CHECK(keys->cipher_key == advertise.cipher_key);
  CHECK(keys->mask_key == advertise.mask_key);
  CHECK(keys->signature == advertise.signature);

  KeyRoster roster{4, 2, {{1, {}, {}, {}, {}}, {3, {}, {}, {}, {}}}};
  roster.neighbours[1].identity[5] = 9;
  auto relayed = round_trip(roster);
  REQUIRE(relayed);
  CHECK(relayed->index == 2);
  REQUIRE(relayed->neighbours.size() == 2);
  CHECK(relayed->neighbours[1].index == 3);
  CHECK(relayed->neighbours[1].identity[5] == 9);

  ShareKeys shares{4, {{3, {}}}};
  shares.shares[0].sealed[10] = 7;
  auto sent = round_trip(shares);
  REQUIRE(sent);
  CHECK(sent->shares[0].peer == 3);
  CHECK(sent->shares[0].sealed[10] == 7);
  auto bundle = round_trip(ShareBundle{4, shares.shares});
  REQUIRE(bundle);
  CHECK(bundle->shares.size() == 1);

  std::vector<zmq::message_t> words;
  words.emplace_back(std::string(16, 'w'));
  auto masked = round_trip(MaskedInput{4, 262144, 0.5, 0.75}, std::move(words));
  REQUIRE(masked);
  CHECK(masked->offset == 262144);
  CHECK(masked->accuracy_after == 0.75);

  auto request = round_trip(UnmaskRequest{4, {1, 2}, {5}});
  REQUIRE(request);
  CHECK(request->self_mask_of == std::vector<MemberIndex>{1, 2});
  CHECK(request->mask_key_of == std::vector<MemberIndex>{5});

  UnmaskResponse response{4, {{5, ShareKind::mask_key, {}}}};
  response.shares[0].share[35] = 8;
  auto revealed = round_trip(response);
  REQUIRE(revealed);
  CHECK(revealed->shares[0].owner == 5);
  CHECK(revealed->shares[0].kind == ShareKind::mask_key);
  CHECK(revealed->shares[0].share[35] == 8);
}

TEST_CASE("malformed secure-round messages are refused with the field named") {
  auto short_key = decode_written<AdvertiseKeys>([](HeaderWriter& h) {
    const std::vector<std::uint8_t> key(31), signature(64);
    h.put("round", std::uint64_t{1}).put_bytes("cipher_key", key).put_bytes("mask_key", key).put_bytes("signature", signature);
  });
  REQUIRE_FALSE(short_key);
  CHECK(short_key.error().field == "cipher_key");

  auto ragged = decode_written<ShareKeys>([](HeaderWriter& h) {
    const std::vector<std::uint8_t> records(kSealedShareBytes + 4 + 1);
    h.put("round", std::uint64_t{1}).put_bytes("shares", records);
  });
  REQUIRE_FALSE(ragged);
  CHECK(ragged.error().field == "shares");
  CHECK(ragged.error().detail.find("whole") != std::string::npos);

  auto index_zero = round_trip(ShareKeys{1, {{0, {}}}});
  REQUIRE_FALSE(index_zero);
  CHECK(index_zero.error().field == "shares[0]");

  CHECK(round_trip(KeyRoster{1, 0, {}}).error().field == "index");
  CHECK(round_trip(UnmaskRequest{1, {70000}, {}}).error().field == "self_mask_of");
  CHECK(round_trip(MaskedInput{1, 0, 0.5, 0.5}).error().field == "input");  // no words

  UnmaskResponse bad_kind{1, {{2, static_cast<ShareKind>(3), {}}}};
  CHECK(round_trip(bad_kind).error().detail.find("share kind") != std::string::npos);
}

TEST_CASE("a train task's secure parameters and privacy plan round-trip and are checked") {
  TrainTask task{7, 3, 60'000, {}};
  task.model_hash[0] = 0xAA;
  task.privacy = PrivacyPlan{1.5, 0.25, 0.1, 1000, true};
  SecureParams params;
  params.nonce[3] = 4;
  params.threshold = 3;
  params.bits = 24;
  params.scale = 1e5;
  params.range = 2;
  task.secure = params;
  auto decoded = round_trip(task);
  REQUIRE(decoded);
  CHECK(decoded->model_hash[0] == 0xAA);
  CHECK(decoded->privacy.clip_norm == 1.5);
  CHECK(decoded->privacy.noise_stddev == 0.25);
  CHECK(decoded->privacy.count_noise_stddev == 0.1);
  CHECK(decoded->privacy.weight_cap == 1000);
  CHECK(decoded->privacy.uniform_weights);
  REQUIRE(decoded->secure);
  CHECK(decoded->secure->nonce[3] == 4);
  CHECK(decoded->secure->threshold == 3);
  CHECK(decoded->secure->bits == 24);
  CHECK(decoded->secure->scale == 1e5);
  CHECK(decoded->secure->range == 2);

  auto plain = task;
  plain.secure.reset();
  CHECK_FALSE(round_trip(plain)->secure);
  CHECK(round_trip(plain)->local_tensors.empty());

  auto fedbn = task;
  fedbn.local_tensors = {2, 3, 9};
  CHECK(round_trip(fedbn)->local_tensors == std::vector<std::uint64_t>{2, 3, 9});
  for (const std::vector<std::uint64_t>& bad : {std::vector<std::uint64_t>{3, 2}, std::vector<std::uint64_t>{4, 4}}) {
    auto unordered = task;
    unordered.local_tensors = bad;
    CHECK(round_trip(unordered).error().field == "local_tensors");
  }

  auto bits = task;
  bits.secure->bits = 40;
  CHECK(round_trip(bits).error().field == "secure.bits");
  auto threshold = task;
  threshold.secure->threshold = 0;
  CHECK(round_trip(threshold).error().field == "secure.threshold");
  auto clip = task;
  clip.privacy.clip_norm = -1;
  CHECK(round_trip(clip).error().field == "privacy.clip_norm");
  auto cap = task;
  cap.privacy.weight_cap = 0;
  CHECK(round_trip(cap).error().field == "privacy.weight_cap");
}
