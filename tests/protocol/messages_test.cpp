#include "shoal/protocol/messages.h"

#include <catch2/catch.hpp>

using namespace shoal::protocol;

namespace {

template <typename M>
Decoded<M> round_trip(const M& message) {
  auto envelope = decode_envelope(encode(message), Limits{});
  REQUIRE(envelope);
  return decode<M>(*envelope);
}

}  // namespace

TEST_CASE("each message survives encoding and decoding") {
  auto hello = round_trip(Hello{"shoal-agent 0.1.0", 12, true});
  REQUIRE(hello);
  CHECK(hello->agent_version == "shoal-agent 0.1.0");
  CHECK(hello->model_version == 12);
  CHECK(hello->eligible);

  auto welcome = round_trip(Welcome{"shoal-aggregator 0.1.0", 13, 5000});
  REQUIRE(welcome);
  CHECK(welcome->model_version == 13);
  CHECK(welcome->heartbeat_interval_ms == 5000);

  auto heartbeat = round_trip(Heartbeat{99});
  REQUIRE(heartbeat);
  CHECK(heartbeat->sequence == 99);

  auto refusal = round_trip(Refusal{"missing field", "model_version"});
  REQUIRE(refusal);
  CHECK(refusal->fault == "missing field");
  CHECK(refusal->detail == "model_version");
}

TEST_CASE("decoding as the wrong message type names both types") {
  auto envelope = decode_envelope(encode(Heartbeat{1}), Limits{});
  REQUIRE(envelope);
  auto hello = decode<Hello>(*envelope);
  REQUIRE_FALSE(hello);
  CHECK(hello.error().fault == DecodeFault::unexpected_type);
  CHECK(hello.error().detail == "expected hello, got heartbeat");
}

TEST_CASE("a message missing a field or with a mistyped field names that field") {
  HeaderWriter missing;
  missing.put("agent_version", "x").put("eligible", true);
  auto envelope = decode_envelope(encode_envelope(MessageType::hello, missing), Limits{});
  auto hello = decode<Hello>(*envelope);
  REQUIRE_FALSE(hello);
  CHECK(hello.error().fault == DecodeFault::missing_field);
  CHECK(hello.error().field == "model_version");

  HeaderWriter mistyped;
  mistyped.put("agent_version", "x").put("model_version", std::uint64_t{1}).put("eligible", "yes");
  auto envelope2 = decode_envelope(encode_envelope(MessageType::hello, mistyped), Limits{});
  auto hello2 = decode<Hello>(*envelope2);
  REQUIRE_FALSE(hello2);
  CHECK(hello2.error().fault == DecodeFault::mistyped_field);
  CHECK(hello2.error().field == "eligible");
}

TEST_CASE("a zero heartbeat interval is an invalid value") {
  auto welcome = round_trip(Welcome{"s", 1, 0});
  REQUIRE_FALSE(welcome);
  CHECK(welcome.error().fault == DecodeFault::invalid_value);
  CHECK(welcome.error().field == "heartbeat_interval_ms");
}

TEST_CASE("payload frames on a message that takes none are refused") {
  std::vector<zmq::message_t> payloads(1);
  auto envelope = decode_envelope(encode(Heartbeat{1}, std::move(payloads)), Limits{});
  REQUIRE(envelope);
  auto heartbeat = decode<Heartbeat>(*envelope);
  REQUIRE_FALSE(heartbeat);
  CHECK(heartbeat.error().fault == DecodeFault::too_many_frames);
}

TEST_CASE("unknown extra fields are ignored so newer peers can add optional ones") {
  HeaderWriter header;
  Heartbeat{5}.write(header);
  header.put("added_in_a_later_release", true);
  auto envelope = decode_envelope(encode_envelope(MessageType::heartbeat, header), Limits{});
  auto heartbeat = decode<Heartbeat>(*envelope);
  REQUIRE(heartbeat);
  CHECK(heartbeat->sequence == 5);
}
