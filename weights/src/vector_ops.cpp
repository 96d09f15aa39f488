#include "shoal/weights/vector_ops.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace shoal::weights {
namespace {

void require_equal_sizes(const char* operation, std::size_t a, std::size_t b) {
  if (a != b) {
    throw std::invalid_argument(std::string(operation) + ": spans of " + std::to_string(a) + " and " +
                                std::to_string(b) + " elements");
  }
}

}  // namespace

void subtract(std::span<const float> a, std::span<const float> b, std::span<float> out) {
  require_equal_sizes("subtract", a.size(), b.size());
  require_equal_sizes("subtract", a.size(), out.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a[i] - b[i];
}

void add_scaled(float alpha, std::span<const float> x, std::span<float> y) {
  require_equal_sizes("add_scaled", x.size(), y.size());
  for (std::size_t i = 0; i < y.size(); ++i) y[i] += alpha * x[i];
}

void scale(float alpha, std::span<float> x) {
  for (float& v : x) v *= alpha;
}

double l2_norm(std::span<const float> x) {
  // Four independent double accumulators: the compiler can vectorise them
  // without reassociating one long chain of additions.
  double sums[4] = {0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 4 <= x.size(); i += 4) {
    for (std::size_t lane = 0; lane < 4; ++lane) sums[lane] += double(x[i + lane]) * double(x[i + lane]);
  }
  for (; i < x.size(); ++i) sums[0] += double(x[i]) * double(x[i]);
  return std::sqrt((sums[0] + sums[1]) + (sums[2] + sums[3]));
}

}  // namespace shoal::weights
