#include "shoal/crypto/hash.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "shoal/crypto/encoding.h"
#include "temp_dir.h"

using namespace shoal::crypto;

TEST_CASE("BLAKE2b-256 of the empty string matches the published value") {
  CHECK(to_hex(blake2b256({})) == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

TEST_CASE("hashing in chunks equals hashing at once") {
  std::vector<std::uint8_t> data(100000);
  std::mt19937 rng(7);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  Blake2b256 streaming;
  for (std::size_t offset = 0; offset < data.size(); offset += 777) {
    streaming.update(std::span(data).subspan(offset, std::min<std::size_t>(777, data.size() - offset)));
  }
  CHECK(streaming.finish() == blake2b256(data));
}

TEST_CASE("hash_file streams a multi-chunk file to the same digest as its bytes") {
  shoal::testing::TempDir dir;
  std::vector<std::uint8_t> data((3 << 20) + 12345);
  std::mt19937 rng(11);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  std::ofstream(dir / "blob", std::ios::binary).write(reinterpret_cast<const char*>(data.data()), data.size());
  auto digest = hash_file(dir / "blob");
  REQUIRE(digest);
  CHECK(*digest == blake2b256(data));
}

TEST_CASE("hash_file names a missing file") {
  shoal::testing::TempDir dir;
  auto digest = hash_file(dir / "absent.weights");
  REQUIRE_FALSE(digest);
  CHECK(digest.error().code == shoal::ErrorCode::not_found);
  CHECK(digest.error().message.find("absent.weights") != std::string::npos);
}

TEST_CASE("finishing a hash twice is a programming error") {
  Blake2b256 hasher;
  (void)hasher.finish();
  CHECK_THROWS_AS(hasher.finish(), std::logic_error);
}

TEST_CASE("SHA-256 matches the FIPS 180-2 test vectors") {
  CHECK(to_hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(to_hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
