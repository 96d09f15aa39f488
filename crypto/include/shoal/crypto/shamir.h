// Shamir t-of-n secret sharing of 32-byte secrets (Shamir 1979) over
// GF(2^16), so a secret can be shared among up to 65535 holders: enough for
// the original secure-aggregation protocol over a whole cohort, not only for
// SecAgg+'s small neighbourhoods.
//
// The secret is read as 16 field elements; each gets its own random
// polynomial of degree t-1, and share i is the evaluation at x = i. Any t
// distinct shares reconstruct the secret; t-1 reveal nothing about it.
// Field arithmetic is branch- and table-free, so its timing does not depend on
// the secret.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/random_source.h"
#include "shoal/crypto/secret.h"

namespace shoal::crypto {

inline constexpr std::size_t kShamirSecretBytes = 32;
inline constexpr unsigned kShamirMaxShares = 65535;
// index (2 bytes) + threshold (2 bytes) + value (32 bytes), little-endian.
inline constexpr std::size_t kShamirShareBytes = 4 + kShamirSecretBytes;

using ShamirSecret = SecretBytes<kShamirSecretBytes>;

struct ShamirShare {
  std::uint16_t index = 0;      // x coordinate, 1..65535
  std::uint16_t threshold = 0;  // shares needed to reconstruct
  SecretBytes<kShamirSecretBytes> value;

  SecretBytes<kShamirShareBytes> to_bytes() const;
  static Result<ShamirShare> from_bytes(std::span<const std::uint8_t> bytes);
};

// Splits `secret` into `share_count` shares with indices 1..share_count.
// REQUIRES nothing; errors when threshold is 0 or above share_count, or
// share_count above kShamirMaxShares.
// The polynomials' coefficients come from `random`.
Result<std::vector<ShamirShare>> shamir_split(const ShamirSecret& secret, unsigned threshold,
                                              unsigned share_count, RandomSource& random = system_random());

// Reconstructs the secret from at least `threshold` shares. Errors when there
// are fewer than the shares' threshold, when two shares have the same index,
// when an index is 0, or when the shares disagree on the threshold.
Result<ShamirSecret> shamir_combine(std::span<const ShamirShare> shares);

}  // namespace shoal::crypto
