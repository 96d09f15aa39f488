#include "shoal/weights/vector_ops.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

using namespace shoal::weights;

namespace {

std::vector<float> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

}  // namespace

TEST_CASE("subtract, add_scaled and scale match element-wise arithmetic at every length") {
  for (std::size_t n : {0u, 1u, 7u, 64u, 1001u}) {
    const auto a = random_vector(n, 1), b = random_vector(n, 2);
    std::vector<float> difference(n);
    subtract(a, b, difference);
    auto y = b;
    add_scaled(0.25f, a, y);
    auto scaled = a;
    scale(-3.0f, scaled);
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE(difference[i] == a[i] - b[i]);
      REQUIRE(y[i] == b[i] + 0.25f * a[i]);
      REQUIRE(scaled[i] == -3.0f * a[i]);
    }
  }
}

TEST_CASE("subtract may write over its first operand") {
  auto a = random_vector(100, 3);
  const auto original = a, b = random_vector(100, 4);
  subtract(a, b, a);
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == original[i] - b[i]);
}

TEST_CASE("l2_norm of a long vector matches a long-double reference") {
  for (std::size_t n : {0u, 3u, 1000003u}) {
    const auto x = random_vector(n, 5);
    long double reference = 0;
    for (float v : x) reference += static_cast<long double>(v) * v;
    CHECK(l2_norm(x) == Approx(static_cast<double>(std::sqrt(reference))).epsilon(1e-12));
  }
}

TEST_CASE("mismatched lengths are a programming error") {
  std::vector<float> a(3), b(4);
  CHECK_THROWS_AS(subtract(a, b, a), std::invalid_argument);
  CHECK_THROWS_AS(add_scaled(1.0f, a, b), std::invalid_argument);
}
