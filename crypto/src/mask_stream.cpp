#include "shoal/crypto/mask_stream.h"

#include <sodium.h>

#include <bit>
#include <cstring>

#include "shoal/crypto/hash.h"
#include "sodium_init.h"

namespace shoal::crypto {
namespace {

constexpr std::size_t kWordsPerBlock = 64 / sizeof(std::uint32_t);  // ChaCha20 blocks are 64 bytes
constexpr std::uint8_t kNonce[crypto_stream_chacha20_NONCEBYTES] = {};  // one stream per derived key

// The keystream bytes are defined as little-endian words on every host.
void to_host_order(std::span<std::uint32_t> words) {
  if constexpr (std::endian::native == std::endian::big) {
    for (auto& w : words) w = __builtin_bswap32(w);
  }
}

}  // namespace

MaskStream::MaskStream(const MaskSeed& seed, std::string_view label) {
  detail::ensure_sodium();
  const auto digest = Blake2b256(seed.span()).update(label).finish();
  std::memcpy(key_.data(), digest.data(), key_.size());
}

void MaskStream::expand(std::uint64_t first, std::span<std::uint32_t> out) const {
  if (out.empty()) return;
  std::uint64_t block = first / kWordsPerBlock;
  const std::size_t skip = first % kWordsPerBlock;
  if (skip != 0) {
    // A chunk that starts inside a block: produce that block and keep its tail.
    std::uint32_t words[kWordsPerBlock] = {};
    crypto_stream_chacha20_xor_ic(reinterpret_cast<unsigned char*>(words),
                                  reinterpret_cast<const unsigned char*>(words), sizeof words, kNonce,
                                  block, key_.data());
    const std::size_t take = std::min(out.size(), kWordsPerBlock - skip);
    std::memcpy(out.data(), words + skip, take * sizeof(std::uint32_t));
    wipe(words, sizeof words);
    to_host_order(out.first(take));
    out = out.subspan(take);
    ++block;
  }
  if (out.empty()) return;
  if (block == 0) {
    // Fast path: write the keystream directly, one pass over memory.
    crypto_stream_chacha20(reinterpret_cast<unsigned char*>(out.data()), out.size_bytes(), kNonce, key_.data());
    to_host_order(out);
    return;
  }
  // libsodium has no "keystream from block n" call, only xor from block n:
  // zero a cache-sized piece and xor the keystream into it, so the buffer is
  // still crossed once.
  constexpr std::size_t kPieceWords = 4096;  // 16 KiB: stays in L1/L2 between the two steps
  for (std::size_t done = 0; done < out.size(); done += kPieceWords) {
    const auto piece = out.subspan(done, std::min(kPieceWords, out.size() - done));
    auto* bytes = reinterpret_cast<unsigned char*>(piece.data());
    std::memset(bytes, 0, piece.size_bytes());
    crypto_stream_chacha20_xor_ic(bytes, bytes, piece.size_bytes(), kNonce, block + done / kWordsPerBlock,
                                  key_.data());
  }
  to_host_order(out);
}

std::vector<std::uint32_t> MaskStream::expand(std::size_t count) const {
  std::vector<std::uint32_t> words(count);
  expand(0, words);
  return words;
}

}  // namespace shoal::crypto
