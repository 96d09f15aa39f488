// Where a party's secret random bytes come from: identity and ephemeral
// keys, mask seeds, Shamir coefficients, AEAD nonces, DP noise and
// stochastic rounding all draw from a RandomSource.
//
// A real device or server uses system_random(), the operating system's
// generator through libsodium. The fleet engine gives each simulated device
// a DeterministicRandom seeded per device and round, so a simulation with
// the same seed repeats byte for byte. No setting of shoal-agent or
// shoal-aggregator selects a deterministic source.
#pragma once

#include <cstdint>
#include <span>

#include "shoal/crypto/secret.h"

namespace shoal::crypto {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Fills `out` with random bytes.
  virtual void fill(std::span<std::uint8_t> out) = 0;
  // Eight random bytes as one integer.
  std::uint64_t next_u64();
};

// The operating system's generator (randombytes_buf); safe from any thread.
RandomSource& system_random();

inline constexpr std::size_t kRandomSeedBytes = 32;
using RandomSeed = SecretBytes<kRandomSeedBytes>;

// The ChaCha20 keystream under a 32-byte seed: the same seed gives the same
// bytes however the draws are split. Not thread-safe; one per party.
class DeterministicRandom final : public RandomSource {
 public:
  explicit DeterministicRandom(const RandomSeed& seed) : key_(seed) {}
  ~DeterministicRandom() override;
  void fill(std::span<std::uint8_t> out) override;

 private:
  static constexpr std::size_t kBlockBytes = 64;
  RandomSeed key_;
  std::uint64_t next_block_ = 0;
  std::uint8_t block_[kBlockBytes] = {};
  std::size_t used_ = kBlockBytes;  // bytes of block_ already handed out
};

}  // namespace shoal::crypto
