#include "shoal/crypto/random_source.h"

#include <sodium.h>

#include <catch2/catch.hpp>

#include <vector>

#include "shoal/crypto/key_agreement.h"
#include "shoal/crypto/shamir.h"

using namespace shoal::crypto;

namespace {

RandomSeed seed_with(std::uint8_t fill) {
  RandomSeed seed;
  std::fill(seed.data(), seed.data() + seed.size(), fill);
  return seed;
}

std::vector<std::uint8_t> draw(RandomSource& random, std::size_t bytes) {
  std::vector<std::uint8_t> out(bytes);
  random.fill(out);
  return out;
}

}  // namespace

TEST_CASE("a deterministic source is the ChaCha20 keystream of its seed, however the draws are split") {
  const auto seed = seed_with(9);
  std::vector<std::uint8_t> keystream(300);
  const unsigned char nonce[crypto_stream_chacha20_NONCEBYTES] = {};
  REQUIRE(sodium_init() >= 0);
  crypto_stream_chacha20(keystream.data(), keystream.size(), nonce, seed.data());

  DeterministicRandom whole(seed);
  CHECK(draw(whole, 300) == keystream);
  DeterministicRandom pieces(seed);
  std::vector<std::uint8_t> joined;
  for (std::size_t size : {1, 7, 64, 100, 128}) {
    const auto piece = draw(pieces, size);
    joined.insert(joined.end(), piece.begin(), piece.end());
  }
  CHECK(joined == keystream);
}

TEST_CASE("deterministic sources with different seeds differ, and the system source never repeats itself") {
  DeterministicRandom a(seed_with(1)), b(seed_with(2));
  CHECK(draw(a, 32) != draw(b, 32));
  CHECK(draw(system_random(), 32) != draw(system_random(), 32));
}

TEST_CASE("keys and shares drawn from equal deterministic sources are equal") {
  DeterministicRandom a(seed_with(5)), b(seed_with(5));
  CHECK(X25519KeyPair::generate(a).public_key == X25519KeyPair::generate(b).public_key);
  ShamirSecret secret(seed_with(3).span());
  auto left = shamir_split(secret, 3, 5, a);
  auto right = shamir_split(secret, 3, 5, b);
  REQUIRE(left);
  REQUIRE(right);
  for (std::size_t i = 0; i < 5; ++i) CHECK((*left)[i].value == (*right)[i].value);
  CHECK(a.next_u64() == b.next_u64());
}
