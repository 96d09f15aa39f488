#include "shoal/crypto/mask_stream.h"

#include <sodium.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "shoal/crypto/hash.h"

using namespace shoal::crypto;

namespace {

MaskSeed seed_with(std::uint8_t fill) {
  MaskSeed seed;
  std::memset(seed.data(), fill, seed.size());
  return seed;
}

}  // namespace

TEST_CASE("a mask stream is the ChaCha20 keystream under the label-derived key, read as little-endian words") {
  const auto seed = seed_with(7);
  const std::size_t words = 100000;
  // Independent computation from the documented definition.
  const auto key = Blake2b256(seed.span()).update("self").finish();
  std::vector<unsigned char> keystream(words * 4);
  const unsigned char nonce[crypto_stream_chacha20_NONCEBYTES] = {};
  REQUIRE(sodium_init() >= 0);
  crypto_stream_chacha20(keystream.data(), keystream.size(), nonce, key.data());
  const auto mask = MaskStream(seed, "self").expand(words);
  for (std::size_t i = 0; i < words; ++i) {
    const std::uint32_t expected = keystream[4 * i] | keystream[4 * i + 1] << 8 | keystream[4 * i + 2] << 16 |
                                   static_cast<std::uint32_t>(keystream[4 * i + 3]) << 24;
    REQUIRE(mask[i] == expected);
  }
}

TEST_CASE("a mask stream is deterministic and separated by seed and label") {
  const auto a = MaskStream(seed_with(1), "pair/1/2").expand(64);
  CHECK(a == MaskStream(seed_with(1), "pair/1/2").expand(64));
  CHECK(a != MaskStream(seed_with(1), "pair/1/3").expand(64));
  CHECK(a != MaskStream(seed_with(2), "pair/1/2").expand(64));
}

TEST_CASE("expanding in chunks at any offsets gives the same words as one call") {
  const MaskStream stream(seed_with(9), "self");
  const std::size_t total = 70000;  // several 16 KiB pieces
  const auto whole = stream.expand(total);
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::uint32_t> chunked(total, 0xdeadbeef);
    std::size_t position = 0;
    while (position < total) {
      const std::size_t length = std::min<std::size_t>(total - position, 1 + rng() % 30000);
      stream.expand(position, std::span(chunked).subspan(position, length));
      position += length;
    }
    REQUIRE(chunked == whole);
  }
}

TEST_CASE("a chunk far into the stream needs no earlier words") {
  const MaskStream stream(seed_with(4), "self");
  const auto prefix = stream.expand(100003);
  std::vector<std::uint32_t> tail(3);
  stream.expand(100000, tail);
  CHECK(tail == std::vector<std::uint32_t>(prefix.end() - 3, prefix.end()));
}

TEST_CASE("mask words are spread over the whole uint32 range") {
  const auto words = MaskStream(seed_with(5), "self").expand(1 << 16);
  // Each of the 16 top-nibble buckets should hold about 4096 words.
  std::array<int, 16> buckets{};
  for (auto w : words) ++buckets[w >> 28];
  for (int count : buckets) CHECK(std::abs(count - 4096) < 400);  // > 6 sigma
}
