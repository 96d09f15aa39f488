// Fixed-point encoding of float vectors as integers modulo 2^bits, for
// secure aggregation: devices quantise, the server sums the integers (it
// sees only the masked sum) and decodes the sum.
//
// A value is clamped to [-range, range], multiplied by `scale` and rounded
// stochastically (up with probability equal to the fraction), so the
// integer's expectation is exactly value * scale and rounding errors average
// out over a cohort instead of adding up. With the scale from
// headroom_scale(), the signed sum of `members` such integers stays within
// (-2^(bits-1), 2^(bits-1)) and so survives the wrap-around of modular
// arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shoal/base/result.h"

namespace shoal::weights {

struct ModularQuantizer {
  unsigned bits = 32;  // 1..32
  double scale = 1;
  double range = 1;

  // The largest scale at which `members` values in [-range, range] sum
  // without wrapping; fails when even scale 1 would wrap.
  static Result<double> headroom_scale(unsigned bits, std::size_t members, double range);

  // out[i] = stochastic_round(clamp(values[i]) * scale) mod 2^bits, with the
  // rounding draws from a generator seeded with `seed`. REQUIRES: finite
  // values (a NaN has no integer; the agent refuses to send a diverged update).
  void quantize(std::span<const float> values, std::span<std::uint32_t> out, std::uint64_t seed) const;

  // The sum's words read as signed integers modulo 2^bits, divided by scale.
  void dequantize(std::span<const std::uint32_t> sum, std::span<double> out) const;
};

}  // namespace shoal::weights
