#include "shoal/protocol/header.h"

#include <catch2/catch.hpp>

using namespace shoal::protocol;

namespace {

// Packs a writer's map and views it, keeping the handle alive.
struct Parsed {
  msgpack::object_handle handle;
  FieldMap fields;
};

Parsed parse(const HeaderWriter& writer) {
  const auto buffer = writer.finish();
  auto handle = unpack_strict({reinterpret_cast<const std::uint8_t*>(buffer.data()), buffer.size()}, "test");
  REQUIRE(handle);
  auto handle_value = std::move(handle).value();
  auto fields = FieldMap::view(handle_value.get(), "");
  REQUIRE(fields);
  return Parsed{std::move(handle_value), *fields};
}

}  // namespace

TEST_CASE("every field type written is read back") {
  const std::vector<std::uint64_t> cohort = {3, 17, 1u << 31};
  const std::vector<std::uint8_t> digest = {1, 2, 3, 255};
  HeaderWriter plan;
  plan.put("epochs", std::uint64_t{5}).put("learning_rate", 0.05);
  HeaderWriter writer;
  writer.put("round", std::uint64_t{42})
      .put("offset", std::int64_t{-7})
      .put("clip", 1.5)
      .put("secure", true)
      .put("model", "cnn")
      .put_bytes("hash", digest)
      .put("cohort", std::span<const std::uint64_t>(cohort))
      .put_map("plan", plan);
  CHECK(writer.field_count() == 8);
  const auto parsed = parse(writer);
  const auto& f = parsed.fields;
  CHECK(*f.get_uint("round") == 42);
  CHECK(*f.get_int("offset") == -7);
  CHECK(*f.get_int("round") == 42);
  CHECK(*f.get_double("clip") == 1.5);
  CHECK(*f.get_bool("secure"));
  CHECK(*f.get_string("model") == "cnn");
  const auto hash = *f.get_bytes("hash");
  CHECK(std::vector<std::uint8_t>(hash.begin(), hash.end()) == digest);
  CHECK(*f.get_uint_array("cohort") == cohort);
  auto nested = f.get_map("plan");
  REQUIRE(nested);
  CHECK(*nested->get_uint("epochs") == 5);
  CHECK(*nested->get_double("learning_rate") == 0.05);
}

TEST_CASE("a peer's strings arrive with control characters escaped and their length capped") {
  HeaderWriter writer;
  writer.put("agent_version", "shoal-agent 1\n2026-12-01 device ffff connected\x1b[2J\x7f")
      .put("long", std::string(kMaxStringBytes + 1, 'a'))
      .put("longest", std::string(kMaxStringBytes, 'a'))
      .put("utf8", "caf\xc3\xa9");
  const auto parsed = parse(writer);
  CHECK(*parsed.fields.get_string("agent_version") ==
        "shoal-agent 1\\x0a2026-12-01 device ffff connected\\x1b[2J\\x7f");
  CHECK(*parsed.fields.get_string("utf8") == "caf\xc3\xa9");
  CHECK(parsed.fields.get_string("longest")->size() == kMaxStringBytes);
  auto too_long = parsed.fields.get_string("long");
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error().fault == DecodeFault::invalid_value);
  CHECK(too_long.error().field == "long");
  CHECK_THAT(too_long.error().detail, Catch::Contains("4097 bytes"));
}

TEST_CASE("doubles with integral values, which msgpack packs as integers, read back as doubles") {
  HeaderWriter writer;
  writer.put("one", 1.0).put("minus_two", -2.0).put("zero", 0.0);
  const auto parsed = parse(writer);
  CHECK(*parsed.fields.get_double("one") == 1.0);
  CHECK(*parsed.fields.get_double("minus_two") == -2.0);
  CHECK(*parsed.fields.get_double("zero") == 0.0);
}

TEST_CASE("a missing field is reported by name, with its path inside nested maps") {
  HeaderWriter plan;
  plan.put("epochs", std::uint64_t{5});
  HeaderWriter writer;
  writer.put_map("plan", plan);
  const auto parsed = parse(writer);
  auto round = parsed.fields.get_uint("round");
  REQUIRE_FALSE(round);
  CHECK(round.error().fault == DecodeFault::missing_field);
  CHECK(round.error().field == "round");
  auto rate = parsed.fields.get_map("plan")->get_double("learning_rate");
  REQUIRE_FALSE(rate);
  CHECK(rate.error().field == "plan.learning_rate");
  CHECK(rate.error().describe() == "missing field 'plan.learning_rate': required field is absent");
}

TEST_CASE("a field of the wrong type is reported with both types") {
  HeaderWriter writer;
  writer.put("round", "forty-two").put("cohort", std::span<const std::uint64_t>()).put("neg", std::int64_t{-1});
  const auto parsed = parse(writer);
  auto round = parsed.fields.get_uint("round");
  REQUIRE_FALSE(round);
  CHECK(round.error().fault == DecodeFault::mistyped_field);
  CHECK(round.error().detail == "expected unsigned integer, got string");
  CHECK(parsed.fields.get_uint("neg").error().fault == DecodeFault::mistyped_field);
  CHECK(parsed.fields.get_string("cohort").error().detail == "expected string, got array");
  CHECK(parsed.fields.get_map("round").error().fault == DecodeFault::mistyped_field);
}

TEST_CASE("an array element of the wrong type is reported with its index") {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(1);
  packer.pack(std::string("cohort"));
  packer.pack_array(2);
  packer.pack(1);
  packer.pack(std::string("two"));
  auto handle = unpack_strict({reinterpret_cast<const std::uint8_t*>(buffer.data()), buffer.size()}, "test");
  auto fields = FieldMap::view(handle->get(), "");
  auto cohort = fields->get_uint_array("cohort");
  REQUIRE_FALSE(cohort);
  CHECK(cohort.error().field == "cohort[1]");
}

TEST_CASE("maps with non-string or repeated keys are malformed") {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(2);
  packer.pack(std::string("round"));
  packer.pack(1);
  packer.pack(std::string("round"));
  packer.pack(2);
  auto handle = unpack_strict({reinterpret_cast<const std::uint8_t*>(buffer.data()), buffer.size()}, "test");
  auto repeated = FieldMap::view(handle->get(), "");
  REQUIRE_FALSE(repeated);
  CHECK(repeated.error().detail == "key appears twice");

  msgpack::sbuffer numeric;
  msgpack::packer<msgpack::sbuffer> numeric_packer(numeric);
  numeric_packer.pack_map(1);
  numeric_packer.pack(7);
  numeric_packer.pack(1);
  auto numeric_handle = unpack_strict({reinterpret_cast<const std::uint8_t*>(numeric.data()), numeric.size()}, "t");
  CHECK(FieldMap::view(numeric_handle->get(), "").error().fault == DecodeFault::malformed);
}

TEST_CASE("unpack_strict refuses trailing bytes and truncated input") {
  HeaderWriter writer;
  writer.put("model", "cnn");
  const auto buffer = writer.finish();
  std::vector<std::uint8_t> bytes(buffer.data(), buffer.data() + buffer.size());
  bytes.push_back(0xc0);
  auto trailing = unpack_strict(bytes, "header");
  REQUIRE_FALSE(trailing);
  CHECK(trailing.error().detail.find("1 trailing bytes") != std::string::npos);
  bytes.resize(buffer.size() - 1);
  auto truncated = unpack_strict(bytes, "header");
  REQUIRE_FALSE(truncated);
  CHECK(truncated.error().fault == DecodeFault::malformed);
}
