// Fuzzes Shamir share decoding and reconstruction from decoded shares: the
// input is a sequence of serialised shares, as relayed between devices.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "shoal/crypto/shamir.h"

using namespace shoal::crypto;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<ShamirShare> shares;
  const std::span<const std::uint8_t> input(data, size);
  for (std::size_t offset = 0; offset < input.size(); offset += kShamirShareBytes) {
    auto share = ShamirShare::from_bytes(input.subspan(offset, std::min(kShamirShareBytes, input.size() - offset)));
    if (share) shares.push_back(*share);
  }
  (void)shamir_combine(shares);
  return 0;
}
