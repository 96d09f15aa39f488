// Test vectors are written in hex; these turn them into byte arrays.
#pragma once

#include <array>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "shoal/crypto/encoding.h"

namespace shoal::testing {

inline std::vector<std::uint8_t> bytes_from_hex(std::string_view hex) {
  auto bytes = crypto::from_hex(hex, "test vector");
  if (!bytes) throw std::invalid_argument(bytes.error().message);
  return *bytes;
}

template <std::size_t N>
std::array<std::uint8_t, N> array_from_hex(std::string_view hex) {
  auto bytes = crypto::array_from_hex<N>(hex, "test vector");
  if (!bytes) throw std::invalid_argument(bytes.error().message);
  return *bytes;
}

}  // namespace shoal::testing
