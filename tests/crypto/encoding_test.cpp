#include "shoal/crypto/encoding.h"

#include <catch2/catch.hpp>

using namespace shoal::crypto;

TEST_CASE("hex round-trips every byte value") {
  std::vector<std::uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
  auto back = from_hex(to_hex(all), "bytes");
  REQUIRE(back);
  CHECK(*back == all);
  CHECK(from_hex("ABcd", "mixed case")->at(0) == 0xab);
}

TEST_CASE("hex decoding names the value and the bad character or length") {
  auto bad_char = array_from_hex<2>("12z4", "seed");
  REQUIRE_FALSE(bad_char);
  CHECK(bad_char.error().message == "seed: character 3 is not a hex digit");
  auto wrong_length = array_from_hex<2>("123456", "seed");
  REQUIRE_FALSE(wrong_length);
  CHECK(wrong_length.error().message == "seed: expected 4 hex digits, got 6");
  auto odd = from_hex("123", "blob");
  REQUIRE_FALSE(odd);
  CHECK(odd.error().message.find("odd number") != std::string::npos);
}
