#include "shoal/protocol/envelope.h"

#include <catch2/catch.hpp>

#include <cstring>

using namespace shoal::protocol;

namespace {

std::vector<zmq::message_t> frames_of(std::vector<std::vector<std::uint8_t>> parts) {
  std::vector<zmq::message_t> frames;
  for (auto& part : parts) frames.emplace_back(part.data(), part.size());
  return frames;
}

// A header frame with arbitrary version, type and fields.
std::vector<std::uint8_t> raw_header(std::uint64_t version, std::uint64_t type) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_array(3);
  packer.pack_uint64(version);
  packer.pack_uint64(type);
  packer.pack_map(0);
  return {buffer.data(), buffer.data() + buffer.size()};
}

}  // namespace

TEST_CASE("an envelope round-trips its type, fields and payload frames untouched") {
  std::vector<float> update(1000);
  for (std::size_t i = 0; i < update.size(); ++i) update[i] = static_cast<float>(i) * 0.5f;
  std::vector<zmq::message_t> payloads;
  payloads.emplace_back(update.data(), update.size() * sizeof(float));
  payloads.emplace_back();
  HeaderWriter header;
  header.put("round", std::uint64_t{3});
  auto decoded = decode_envelope(encode_envelope(MessageType::heartbeat, header, std::move(payloads)), Limits{});
  REQUIRE(decoded);
  CHECK(decoded->type() == MessageType::heartbeat);
  CHECK(*decoded->header().get_uint("round") == 3);
  REQUIRE(decoded->payload_count() == 2);
  CHECK(decoded->payload(0).size() == update.size() * sizeof(float));
  CHECK(std::memcmp(decoded->payload(0).data(), update.data(), decoded->payload(0).size()) == 0);
  CHECK(decoded->payload(1).empty());
}

TEST_CASE("another protocol version is refused and both versions are named") {
  auto decoded = decode_envelope(frames_of({raw_header(kProtocolVersion + 1, 1)}), Limits{});
  REQUIRE_FALSE(decoded);
  CHECK(decoded.error().fault == DecodeFault::wrong_version);
  CHECK(decoded.error().detail == "peer speaks protocol 2, this build speaks 1");
}

TEST_CASE("an unknown message type is refused with its number") {
  for (std::uint64_t type : {0ull, 999ull, 70000ull}) {
    auto decoded = decode_envelope(frames_of({raw_header(kProtocolVersion, type)}), Limits{});
    REQUIRE_FALSE(decoded);
    CHECK(decoded.error().fault == DecodeFault::unknown_type);
    CHECK(decoded.error().detail.find(std::to_string(type)) != std::string::npos);
  }
}

TEST_CASE("frame limits are enforced: header size, payload size, payload count") {
  Limits limits;
  limits.max_header_bytes = 64;
  limits.max_payload_bytes = 100;
  limits.max_payload_frames = 2;
  HeaderWriter big;
  big.put("padding", std::string(100, 'x'));
  auto oversized_header = decode_envelope(encode_envelope(MessageType::hello, big), limits);
  REQUIRE_FALSE(oversized_header);
  CHECK(oversized_header.error().fault == DecodeFault::oversized_frame);
  CHECK(oversized_header.error().field == "header");

  std::vector<zmq::message_t> large;
  large.emplace_back(10);
  large.emplace_back(101);
  auto oversized_payload = decode_envelope(encode_envelope(MessageType::hello, {}, std::move(large)), limits);
  REQUIRE_FALSE(oversized_payload);
  CHECK(oversized_payload.error().field == "payload 1");

  std::vector<zmq::message_t> many(3);
  auto too_many = decode_envelope(encode_envelope(MessageType::hello, {}, std::move(many)), limits);
  REQUIRE_FALSE(too_many);
  CHECK(too_many.error().fault == DecodeFault::too_many_frames);
}

TEST_CASE("a header frame that is not [version, type, map] is malformed") {
  auto no_frames = decode_envelope({}, Limits{});
  REQUIRE_FALSE(no_frames);
  CHECK(no_frames.error().fault == DecodeFault::missing_frame);

  msgpack::sbuffer two;
  msgpack::packer<msgpack::sbuffer>(two).pack_array(2).pack(1).pack(1);
  auto short_array = decode_envelope(frames_of({{two.data(), two.data() + two.size()}}), Limits{});
  REQUIRE_FALSE(short_array);
  CHECK(short_array.error().fault == DecodeFault::malformed);

  msgpack::sbuffer fields_not_map;
  msgpack::packer<msgpack::sbuffer>(fields_not_map).pack_array(3).pack(1).pack(1).pack(std::string("x"));
  auto not_map = decode_envelope(frames_of({{fields_not_map.data(), fields_not_map.data() + fields_not_map.size()}}),
                                 Limits{});
  REQUIRE_FALSE(not_map);
  CHECK(not_map.error().fault == DecodeFault::mistyped_field);

  msgpack::sbuffer string_version;
  msgpack::packer<msgpack::sbuffer>(string_version).pack_array(3).pack(std::string("1")).pack(1).pack_map(0);
  auto version = decode_envelope(frames_of({{string_version.data(), string_version.data() + string_version.size()}}),
                                 Limits{});
  REQUIRE_FALSE(version);
  CHECK(version.error().field == "version");
}
