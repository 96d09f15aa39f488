// Integer buffers (BatchNorm's num_batches_tracked) in the flat float32
// vector: whole numbers, exact up to 2^24.
//
// In a secure round each value of a device's input is clamped to the round's
// range (about 1) before masking, which a round's count of batches exceeds.
// So devices send integer buffers' increments in units of kSecureCountUnit
// batches, and the server multiplies the decoded mean back.
#pragma once

#include <span>

#include "shoal/weights/layout.h"

namespace shoal::weights {

inline constexpr float kSecureCountUnit = 1024.0f;

// Multiplies the values of every int64 tensor of `layout` by `factor`.
void scale_integer_buffers(const Layout& layout, std::span<float> values, float factor);
// Rounds the values of every int64 tensor of `layout` to the nearest whole number.
void round_integer_buffers(const Layout& layout, std::span<float> values);

}  // namespace shoal::weights
