#include "shoal/simulations/partition.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <set>

using namespace shoal::simulations;

namespace {

std::vector<std::int64_t> balanced_labels(std::size_t n) {
  std::vector<std::int64_t> labels(n);
  for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<std::int64_t>(i % 10);
  return labels;
}

void check_each_sample_once(const Partition& parts, std::size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& part : parts) {
    for (auto i : part) ++seen[i];
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
}

// The mean over devices of the share of the device's most common class.
double mean_top_class_share(const Partition& parts, const std::vector<std::int64_t>& labels) {
  double total = 0;
  for (const auto& part : parts) {
    std::vector<std::size_t> counts(10, 0);
    for (auto i : part) ++counts[static_cast<std::size_t>(labels[i])];
    total += static_cast<double>(*std::max_element(counts.begin(), counts.end())) / static_cast<double>(part.size());
  }
  return total / static_cast<double>(parts.size());
}

}  // namespace

TEST_CASE("an iid split gives every device an equal share and every sample once") {
  const auto parts = partition_iid(1003, 10, 7);
  REQUIRE(parts.size() == 10);
  for (const auto& part : parts) CHECK((part.size() == 100 || part.size() == 101));
  check_each_sample_once(parts, 1003);
  CHECK(partition_iid(1003, 10, 7) == parts);
  CHECK(partition_iid(1003, 10, 8) != parts);
}

TEST_CASE("a dirichlet split skews labels more as alpha shrinks, and is seeded") {
  const auto labels = balanced_labels(20000);
  auto skewed = partition_dirichlet(labels, 20, 0.1, 1);
  auto mild = partition_dirichlet(labels, 20, 100.0, 1);
  REQUIRE(skewed);
  REQUIRE(mild);
  check_each_sample_once(*skewed, labels.size());
  check_each_sample_once(*mild, labels.size());
  for (const auto& part : *skewed) CHECK(part.size() >= 10);
  CHECK(mean_top_class_share(*skewed, labels) > 0.5);   // a few classes dominate each device
  CHECK(mean_top_class_share(*mild, labels) < 0.2);     // close to the 0.1 of a balanced device
  CHECK(*partition_dirichlet(labels, 20, 0.1, 1) == *skewed);
}

TEST_CASE("impossible dirichlet splits are refused with the reason") {
  const auto labels = balanced_labels(50);
  auto crowded = partition_dirichlet(labels, 20, 0.5, 1);
  REQUIRE_FALSE(crowded);
  CHECK(crowded.error().message.find("no draw gave each of 20 devices 10 samples") != std::string::npos);
  CHECK_FALSE(partition_dirichlet(labels, 2, 0.0, 1));
  CHECK_FALSE(parse_split("shards"));
}
