// BLAKE2b-256 (libsodium's crypto_generichash with a 32-byte output): the
// hash shoal uses for weights payloads, deltas and key ids.
// Blake2b256 hashes a stream of chunks; hash_file streams a file from disk.
// SHA-256 is there for release metadata, where The Update Framework's
// tooling expects it (key ids, target and metadata hashes).
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "shoal/base/result.h"
#include "shoal/crypto/secret.h"

namespace shoal::crypto {

inline constexpr std::size_t kBlake2b256Bytes = 32;
using Blake2b256Digest = std::array<std::uint8_t, kBlake2b256Bytes>;

// Incremental BLAKE2b-256. Feed bytes with update(), read the digest once with finish().
class Blake2b256 {
 public:
  Blake2b256();
  // Keyed BLAKE2b (a MAC or KDF); REQUIRES: 16 <= key.size() <= 64.
  explicit Blake2b256(std::span<const std::uint8_t> key);
  Blake2b256(const Blake2b256&) = delete;
  Blake2b256& operator=(const Blake2b256&) = delete;
  ~Blake2b256();

  Blake2b256& update(std::span<const std::uint8_t> bytes);
  Blake2b256& update(std::string_view text);
  // REQUIRES: called at most once.
  Blake2b256Digest finish();

 private:
  crypto_generichash_state state_;
  bool finished_ = false;
};

Blake2b256Digest blake2b256(std::span<const std::uint8_t> bytes);

inline constexpr std::size_t kSha256Bytes = 32;
using Sha256Digest = std::array<std::uint8_t, kSha256Bytes>;

Sha256Digest sha256(std::span<const std::uint8_t> bytes);
Sha256Digest sha256(std::string_view text);

// Hashes the file at `path` in fixed-size chunks; memory use does not grow
// with the file. Errors name the file and the failed operation.
Result<Blake2b256Digest> hash_file(const std::filesystem::path& path);

}  // namespace shoal::crypto
