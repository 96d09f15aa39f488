// Mask streams for secure aggregation: a 32-byte seed and a stream label
// expand into an arbitrarily long, deterministic sequence of uint32 words.
//
// Word i is word (i mod kSegmentWords) of the ChaCha20 keystream under the
// stream key with nonce (i / kSegmentWords), read little-endian. Every word
// depends only on (seed, label, i), so a long mask can be expanded in
// independent chunks on several threads, and any chunking gives the same
// words as one call; chunks that start on a segment boundary run at the raw
// keystream speed of libsodium. Both sides of a pairwise mask expand the same stream; the
// server expands self-masks and dropped devices' masks while unmasking.
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
  // Words per segment (256 KiB of keystream): one ChaCha20 nonce each.
  static constexpr std::uint64_t kSegmentWords = std::uint64_t{1} << 16;

  // The stream key is BLAKE2b-256 keyed with `seed` over `label`, so labels
  // ("self", "pair/3/17", ...) give independent streams from one seed.
  MaskStream(const MaskSeed& seed, std::string_view label);

  // Writes words [first, first + out.size()) of the stream into `out`.
  void expand(std::uint64_t first, std::span<std::uint32_t> out) const;

  // Words [0, count).
  std::vector<std::uint32_t> expand(std::size_t count) const;

 private:
  // Words [offset, offset + out.size()) of one segment.
  void expand_segment(std::uint64_t segment, std::uint64_t offset, std::span<std::uint32_t> out) const;

  SecretBytes<32> key_;
};

}  // namespace shoal::crypto
