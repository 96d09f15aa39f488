// The vector maths of federated learning on flat float32 buffers: update =
// local - global, scaled accumulation, norms for clipping. Plain loops over
// spans that the compiler vectorises; every caller passes equal lengths
// (checked, a mismatch is a programming error and throws).
#pragma once

#include <span>

namespace shoal::weights {

// out[i] = a[i] - b[i]. `out` may alias `a`.
void subtract(std::span<const float> a, std::span<const float> b, std::span<float> out);

// y[i] += alpha * x[i].
void add_scaled(float alpha, std::span<const float> x, std::span<float> y);

// x[i] *= alpha.
void scale(float alpha, std::span<float> x);

// sqrt(sum x[i]^2), accumulated in double so a 10M-element vector keeps
// float precision.
double l2_norm(std::span<const float> x);

}  // namespace shoal::weights
