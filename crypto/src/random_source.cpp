#include "shoal/crypto/random_source.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "sodium_init.h"

namespace shoal::crypto {
namespace {

class SystemRandom final : public RandomSource {
 public:
  void fill(std::span<std::uint8_t> out) override {
    detail::ensure_sodium();
    randombytes_buf(out.data(), out.size());
  }
};

}  // namespace

std::uint64_t RandomSource::next_u64() {
  std::uint8_t bytes[8];
  fill(bytes);
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = value << 8 | bytes[i];  // little-endian on every host
  wipe(bytes, sizeof bytes);
  return value;
}

RandomSource& system_random() {
  static SystemRandom source;
  return source;
}

DeterministicRandom::~DeterministicRandom() { wipe(block_, sizeof block_); }

void DeterministicRandom::fill(std::span<std::uint8_t> out) {
  detail::ensure_sodium();
  static constexpr unsigned char kNonce[crypto_stream_chacha20_NONCEBYTES] = {};
  while (!out.empty()) {
    if (used_ == kBlockBytes) {
      std::memset(block_, 0, sizeof block_);
      crypto_stream_chacha20_xor_ic(block_, block_, sizeof block_, kNonce, next_block_++, key_.data());
      used_ = 0;
    }
    const std::size_t take = std::min(out.size(), kBlockBytes - used_);
    std::memcpy(out.data(), block_ + used_, take);
    used_ += take;
    out = out.subspan(take);
  }
}

}  // namespace shoal::crypto
