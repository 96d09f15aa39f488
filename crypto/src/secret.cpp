#include "shoal/crypto/secret.h"

#include <sodium.h>

namespace shoal::crypto {

void wipe(void* data, std::size_t size) {
  if (size != 0) sodium_memzero(data, size);
}

bool equal_in_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  if (a.size() != b.size()) return false;
  return a.empty() || sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace shoal::crypto
