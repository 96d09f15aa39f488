// Seeded random 28x28 images in [0, 1), for tests that need model inputs.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace shoal::testing {

inline std::vector<float> random_images(std::size_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::vector<float> images(count * 28 * 28);
  for (auto& p : images) p = pixel(rng);
  return images;
}

}  // namespace shoal::testing
