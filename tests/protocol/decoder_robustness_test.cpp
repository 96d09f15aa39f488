// Random and truncated byte strings fed to every decoder: each must return an
// error (or, by chance, a valid message), never crash or read out of bounds.
// The sanitizer build in CI turns any out-of-bounds read into a failure.
#include <catch2/catch.hpp>

#include <random>

#include "shoal/crypto/key_file.h"
#include "shoal/crypto/shamir.h"
#include "shoal/protocol/enrolment.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"

using namespace shoal;
using namespace shoal::protocol;

namespace {

std::vector<std::uint8_t> random_bytes(std::mt19937& rng, std::size_t size) {
  std::vector<std::uint8_t> bytes(size);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
  return bytes;
}

// Decodes one header frame as every message type; returns how many decoded.
int decode_as_every_message(std::span<const std::uint8_t> header) {
  std::vector<zmq::message_t> frames;
  frames.emplace_back(header.data(), header.size());
  auto envelope = decode_envelope(std::move(frames), Limits{});
  if (!envelope) {
    CHECK_FALSE(envelope.error().describe().empty());
    return 0;
  }
  return int(bool(decode<Hello>(*envelope))) + int(bool(decode<Welcome>(*envelope))) +
         int(bool(decode<Heartbeat>(*envelope))) + int(bool(decode<Refusal>(*envelope))) +
         int(bool(decode<HealthReport>(*envelope)));
}

std::vector<std::vector<std::uint8_t>> valid_headers() {
  std::vector<std::vector<std::uint8_t>> headers;
  auto add = [&](std::vector<zmq::message_t> frames) {
    headers.emplace_back(frames[0].data<std::uint8_t>(), frames[0].data<std::uint8_t>() + frames[0].size());
  };
  add(encode(Hello{"shoal-agent 0.1.0", 7, true}));
  add(encode(Welcome{"shoal-aggregator", 8, 1000}));
  add(encode(Heartbeat{3}));
  add(encode(Refusal{"malformed", "because"}));
  add(encode(HealthReport{"cnn", "install", 12, 11, 12, "", "passed", 0, 0.83, 500}));
  return headers;
}

}  // namespace

TEST_CASE("every truncation of a valid message is refused by the decoders") {
  for (const auto& header : valid_headers()) {
    CHECK(decode_as_every_message(header) == 1);
    for (std::size_t length = 0; length < header.size(); ++length) {
      CHECK(decode_as_every_message(std::span(header).first(length)) == 0);
    }
  }
}

TEST_CASE("random bytes and random corruptions of valid messages never crash the decoders") {
  std::mt19937 rng(20261125);
  for (int i = 0; i < 20000; ++i) {
    (void)decode_as_every_message(random_bytes(rng, rng() % 64));
  }
  for (const auto& header : valid_headers()) {
    for (int i = 0; i < 5000; ++i) {
      auto corrupted = header;
      for (int flips = 1 + rng() % 3; flips > 0; --flips) corrupted[rng() % corrupted.size()] ^= 1 << (rng() % 8);
      (void)decode_as_every_message(corrupted);
    }
  }
}

TEST_CASE("random text never crashes the key file and enrolment parsers") {
  std::mt19937 rng(7);
  const auto key = crypto::IdentityKeyFile{crypto::KeyRole::device, crypto::IdentityKeyPair::generate()};
  const std::string valid = crypto::format_identity_key(key);
  for (int i = 0; i < 3000; ++i) {
    std::string text = valid;
    for (int flips = 1 + rng() % 4; flips > 0; --flips) text[rng() % text.size()] = static_cast<char>(rng());
    auto identity = crypto::parse_identity_key(text, "fuzz");
    if (!identity) CHECK_FALSE(identity.error().message.empty());
    (void)crypto::parse_public_key(text, "fuzz");
    (void)EnrolmentList::parse(text, "fuzz");
  }
  for (int i = 0; i < 3000; ++i) {
    const auto bytes = random_bytes(rng, rng() % 40);
    (void)crypto::ShamirShare::from_bytes(bytes);
  }
}
