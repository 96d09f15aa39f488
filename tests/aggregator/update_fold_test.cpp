#include "shoal/aggregator/update_fold.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace shoal;
using namespace shoal::aggregator;

namespace {

std::vector<std::vector<float>> random_updates(std::size_t count, std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> value(0.0f, 0.05f);
  std::vector<std::vector<float>> updates(count, std::vector<float>(size));
  for (auto& update : updates) {
    for (auto& v : update) v = value(rng);
  }
  return updates;
}

}  // namespace

TEST_CASE("the streaming fold equals the batch weighted mean to 1e-6") {
  const std::size_t size = 10'003;  // not a multiple of any vector width
  const auto updates = random_updates(50, size, 1);
  std::vector<double> weights;
  for (std::size_t i = 0; i < updates.size(); ++i) weights.push_back(static_cast<double>(1 + (i * 37) % 600));
  WeightedMeanFold fold(size);
  for (std::size_t i = 0; i < updates.size(); ++i) REQUIRE(fold.add(updates[i], weights[i]));
  const auto mean = fold.result();
  double total = 0;
  for (double w : weights) total += w;
  CHECK(fold.count() == 50);
  CHECK(fold.total_weight() == total);
  for (std::size_t j = 0; j < size; ++j) {
    double expected = 0;
    for (std::size_t i = 0; i < updates.size(); ++i) expected += weights[i] * updates[i][j];
    REQUIRE(std::abs(mean[j] - expected / total) <= 1e-6);
  }
  CHECK(fold.take_result() == mean);  // the same values, from the sum's own buffer
}

TEST_CASE("an update with a NaN or infinity, the wrong size or a bad weight is refused and not folded") {
  const std::size_t size = 30'000;
  const auto updates = random_updates(2, size, 2);
  WeightedMeanFold fold(size);
  REQUIRE(fold.add(updates[0], 2.0));
  const auto before = fold.result();

  auto poisoned = updates[1];
  poisoned[2 * 4096 + 5] = std::numeric_limits<float>::quiet_NaN();
  auto nan = fold.add(poisoned, 1.0);
  REQUIRE_FALSE(nan);
  CHECK(nan.error().message.find("NaN or infinite value at index 8197") != std::string::npos);
  poisoned[2 * 4096 + 5] = std::numeric_limits<float>::infinity();
  CHECK_FALSE(fold.add(poisoned, 1.0));

  auto short_update = fold.add(std::vector<float>(size - 1), 1.0);
  REQUIRE_FALSE(short_update);
  CHECK(short_update.error().message.find("has " + std::to_string(size - 1) + " values") != std::string::npos);
  CHECK_FALSE(fold.add(updates[1], 0.0));
  CHECK_FALSE(fold.add(updates[1], std::numeric_limits<double>::quiet_NaN()));

  CHECK(fold.count() == 1);
  CHECK(fold.total_weight() == 2.0);
  const auto after = fold.result();
  for (std::size_t j = 0; j < size; ++j) REQUIRE(after[j] == Approx(before[j]).margin(1e-7));
}

TEST_CASE("the coordinate-wise median ignores one outlying update") {
  auto median = *make_combiner(CombinerKind::median, 3);
  REQUIRE(median->add(std::vector<float>{1, 10, -1}, 5));
  REQUIRE(median->add(std::vector<float>{2, 20, -2}, 1));
  REQUIRE(median->add(std::vector<float>{1000, -1000, 1000}, 1));
  CHECK(median->result() == std::vector<float>{2, 10, -1});
  REQUIRE(median->add(std::vector<float>{3, 30, -3}, 1));
  CHECK(median->result() == std::vector<float>{2.5f, 15, -1.5f});  // even count: the middle two averaged
}

TEST_CASE("the trimmed mean drops the given share at each end of every coordinate") {
  auto trimmed = *make_combiner(CombinerKind::trimmed_mean, 2, 0.2);
  for (float v : {1.0f, 2.0f, 3.0f, 4.0f, 100.0f}) REQUIRE(trimmed->add(std::vector<float>{v, -v}, 1));
  CHECK(trimmed->result() == std::vector<float>{3, -3});  // 5 updates, 1 dropped at each end
  CHECK_FALSE(make_combiner(CombinerKind::trimmed_mean, 2, 0.5));
  auto unknown = parse_combiner("mode");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message.find("known: mean, median, trimmed_mean") != std::string::npos);
}
