#include "shoal/weights/modular_quantizer.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace shoal::weights {

Result<double> ModularQuantizer::headroom_scale(unsigned bits, std::size_t members, double range) {
  if (bits < 1 || bits > 32 || members == 0 || !(range > 0)) {
    return make_error(ErrorCode::invalid_argument, "quantizer: bits must be in [1, 32], members and range positive");
  }
  // Each integer is at most range * scale + 1 in magnitude (rounding up).
  const double half = std::ldexp(1.0, static_cast<int>(bits) - 1) - 1;
  const double scale = (half / static_cast<double>(members) - 1) / range;
  if (!(scale >= 1 / range)) {
    return make_error(ErrorCode::invalid_argument, "quantizer: " + std::to_string(members) +
                                                       " members do not fit in " + std::to_string(bits) +
                                                       " bits; use more bits or a smaller cohort");
  }
  return scale;
}

void ModularQuantizer::quantize(std::span<const float> values, std::span<std::uint32_t> out, std::uint64_t seed) const {
  if (values.size() != out.size()) throw std::invalid_argument("quantize: lengths differ");
  std::mt19937_64 generator(seed);
  constexpr double kUnit = 0x1.0p-53;  // 53 random bits -> [0, 1)
  const std::uint32_t mask = bits >= 32 ? ~std::uint32_t{0} : (std::uint32_t{1} << bits) - 1;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double x = std::clamp(static_cast<double>(values[i]), -range, range) * scale;
    const double floor = std::floor(x);
    const double draw = static_cast<double>(generator() >> 11) * kUnit;
    const auto integer = static_cast<std::int64_t>(floor) + (draw < x - floor ? 1 : 0);
    out[i] = static_cast<std::uint32_t>(static_cast<std::uint64_t>(integer)) & mask;
  }
}

void ModularQuantizer::dequantize(std::span<const std::uint32_t> sum, std::span<double> out) const {
  if (sum.size() != out.size()) throw std::invalid_argument("dequantize: lengths differ");
  const std::uint64_t modulus = std::uint64_t{1} << bits;
  const std::uint64_t mask = modulus - 1;
  for (std::size_t i = 0; i < sum.size(); ++i) {
    const std::uint64_t word = sum[i] & mask;
    const auto signed_word = static_cast<std::int64_t>(word) - (word >= modulus / 2 ? static_cast<std::int64_t>(modulus) : 0);
    out[i] = static_cast<double>(signed_word) / scale;
  }
}

}  // namespace shoal::weights
