// Mask streams for secure aggregation: a 32-byte seed and a stream label
// expand into an arbitrarily long, deterministic sequence of uint32 words.
//
// Word i is word i of the ChaCha20 keystream (nonce 0) under the stream key,
// read little-endian. Every word depends only on (seed, label, i), so a long
// mask can be expanded in independent chunks on several threads, any
// chunking gives the same words as one call, and a chunk starting at any word
// runs as fast as one starting at word 0. Both sides of a pairwise mask expand
// the same stream; the server expands self-masks and dropped devices' masks
// while unmasking.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "shoal/crypto/secret.h"

namespace shoal::crypto {

using MaskSeed = SecretBytes<32>;

class MaskStream {
 public:
  // The stream key is BLAKE2b-256 keyed with `seed` over `label`, so labels
  // ("self", "pair/3/17", ...) give independent streams from one seed.
  MaskStream(const MaskSeed& seed, std::string_view label);

  // Writes words [first, first + out.size()) of the stream into `out`.
  void expand(std::uint64_t first, std::span<std::uint32_t> out) const;

  // Words [0, count).
  std::vector<std::uint32_t> expand(std::size_t count) const;

 private:
  SecretBytes<32> key_;
};

}  // namespace shoal::crypto
