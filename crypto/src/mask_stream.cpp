#include "shoal/crypto/mask_stream.h"

#include <sodium.h>

#include <array>
#include <bit>
#include <cstring>

#include "shoal/crypto/hash.h"
#include "sodium_init.h"

namespace shoal::crypto {
namespace {

constexpr std::size_t kBlockBytes = 64;  // one ChaCha20 block
constexpr std::size_t kWordsPerBlock = kBlockBytes / sizeof(std::uint32_t);
constexpr unsigned char kNonce[crypto_stream_chacha20_NONCEBYTES] = {};  // each label has its own key

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
                                  reinterpret_cast<const unsigned char*>(words), sizeof words, kNonce, block,
                                  key_.data());
    const std::size_t take = std::min(out.size(), kWordsPerBlock - skip);
    std::memcpy(out.data(), words + skip, take * sizeof(std::uint32_t));
    wipe(words, sizeof words);
    to_host_order(out.first(take));
    out = out.subspan(take);
    ++block;
  }
  if (out.empty()) return;
  // libsodium's crypto_stream_chacha20 zeroes its whole output and then
  // xors the keystream into it, crossing a large buffer twice. Xoring the
  // keystream with a small block of zeros that stays in L1 writes the output
  // exactly once, and can start at any block.
  static constexpr std::size_t kPieceBytes = 16384;
  static const std::array<unsigned char, kPieceBytes> kZeros{};
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  for (std::size_t done = 0; done < out.size_bytes(); done += kPieceBytes) {
    crypto_stream_chacha20_xor_ic(bytes + done, kZeros.data(), std::min(kPieceBytes, out.size_bytes() - done), kNonce,
                                  block + done / kBlockBytes, key_.data());
  }
  to_host_order(out);
}

std::vector<std::uint32_t> MaskStream::expand(std::size_t count) const {
  std::vector<std::uint32_t> words(count);
  expand(0, words);
  return words;
}

}  // namespace shoal::crypto
