#include "shoal/aggregator/update_fold.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <span>
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
  CHECK(short_update.error().message.find("part of " + std::to_string(size - 1) + " values at offset 0 does not fit") !=
        std::string::npos);
  CHECK_FALSE(fold.add(updates[1], 0.0));
  CHECK_FALSE(fold.add(updates[1], std::numeric_limits<double>::quiet_NaN()));

  CHECK(fold.count() == 1);
  CHECK(fold.total_weight() == 2.0);
  const auto after = fold.result();
  for (std::size_t j = 0; j < size; ++j) REQUIRE(after[j] == Approx(before[j]).margin(1e-7));
}

TEST_CASE("parts fold to the whole update's mean, a part that does not fit or has a NaN is refused") {
  const std::size_t size = 10;
  const auto updates = random_updates(2, size, 3);
  WeightedMeanFold whole(size);
  WeightedMeanFold parts(size, 4);  // parts of 4, 4 and 2 values
  for (std::size_t u = 0; u < 2; ++u) {
    const double weight = 1.0 + static_cast<double>(u);
    REQUIRE(whole.add(updates[u], weight));
    const std::span<const float> update = updates[u];
    REQUIRE(parts.add_part(u, 0, update.subspan(0, 8), weight));  // two parts in one call
    REQUIRE(parts.add_part(u, 8, update.subspan(8), weight));
    REQUIRE(parts.finish_update(u, weight));
  }
  CHECK(parts.result() == whole.result());
  CHECK(parts.count() == 2);

  const std::span<const float> update = updates[0];
  CHECK_FALSE(parts.add_part(2, 2, update.subspan(2, 4), 1.0));  // not on a part boundary
  CHECK_FALSE(parts.add_part(2, 4, update.subspan(4, 3), 1.0));  // ends inside a part
  CHECK_FALSE(parts.add_part(2, 8, update.subspan(0, 4), 1.0));  // runs past the model's end
  auto poisoned = updates[1];
  poisoned[5] = std::numeric_limits<float>::infinity();
  auto nan = parts.add_part(2, 4, std::span<const float>(poisoned).subspan(4, 4), 1.0);
  REQUIRE_FALSE(nan);
  CHECK(nan.error().message.find("at index 5") != std::string::npos);
  // The refused part was folded and taken back out: the sums keep at most a last-bit rounding.
  const auto after = parts.result(), expected = whole.result();
  for (std::size_t i = 0; i < size; ++i) CHECK(after[i] == Approx(expected[i]).epsilon(1e-6).margin(1e-9));
}

TEST_CASE("a held combiner takes parts in order and leaves out an update never finished") {
  auto median = *make_combiner(CombinerKind::median, 3, 0.1, 2);
  REQUIRE(median->add_part(0, 0, std::vector<float>{1, 10}, 1));
  auto skipped = median->add_part(1, 2, std::vector<float>{-2}, 1);
  REQUIRE_FALSE(skipped);
  CHECK(skipped.error().message.find("out of order") != std::string::npos);
  CHECK_FALSE(median->finish_update(0, 1));  // one part short
  REQUIRE(median->add_part(0, 2, std::vector<float>{-1}, 1));
  REQUIRE(median->finish_update(0, 1));
  REQUIRE(median->add_part(1, 0, std::vector<float>{1000, -1000}, 1));  // never finished
  CHECK(median->count() == 1);
  CHECK(median->result() == std::vector<float>{1, 10, -1});
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
