#include "shoal/simulations/partition.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <set>

using namespace shoal::simulations;
using shoal::simulations::partition;

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
  CHECK_FALSE(parse_split("pathological"));
}

TEST_CASE("a shards split gives each device at most k classes and every sample once") {
  const auto labels = balanced_labels(10000);
  PartitionSpec spec{.split = SplitKind::shards, .devices = 50, .shards_per_device = 2, .seed = 3};
  auto parts = partition(labels, spec);
  REQUIRE(parts);
  check_each_sample_once(*parts, labels.size());
  for (const auto& part : *parts) {
    std::set<std::int64_t> classes;
    for (auto i : part) classes.insert(labels[i]);
    CHECK(classes.size() <= 2);
    CHECK(part.size() == 200);
  }
  CHECK(*partition(labels, spec) == *parts);
  spec.devices = 6000;
  auto refused = partition(labels, spec);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("fleet.devices x fleet.shards_per_device is 12000 shards") != std::string::npos);
}

TEST_CASE("a quantity split skews sample counts with sigma and still places every sample once") {
  const auto labels = balanced_labels(20000);
  auto spread_of = [&](double sigma) {
    PartitionSpec spec{.split = SplitKind::quantity, .devices = 100, .quantity_sigma = sigma, .seed = 5};
    auto parts = partition(labels, spec);
    REQUIRE(parts);
    check_each_sample_once(*parts, labels.size());
    std::size_t smallest = labels.size(), largest = 0;
    for (const auto& part : *parts) {
      CHECK(part.size() >= 1);
      smallest = std::min(smallest, part.size());
      largest = std::max(largest, part.size());
    }
    return static_cast<double>(largest) / static_cast<double>(smallest);
  };
  CHECK(spread_of(0.0) < 1.1);  // equal shares
  CHECK(spread_of(1.5) > 20);   // a few devices hold much of the data
}

TEST_CASE("with samples_per_device, devices draw with replacement so a fleet can outgrow the dataset") {
  const auto labels = balanced_labels(1000);
  for (auto split : {SplitKind::iid, SplitKind::dirichlet, SplitKind::shards, SplitKind::quantity}) {
    PartitionSpec spec{.split = split, .devices = 5000, .alpha = 0.1, .shards_per_device = 2,
                       .samples_per_device = 20, .seed = 9};
    auto parts = partition(labels, spec);
    REQUIRE(parts);
    REQUIRE(parts->size() == 5000);
    std::size_t total = 0;
    for (const auto& part : *parts) {
      CHECK(!part.empty());
      for (auto i : part) CHECK(i < labels.size());
      total += part.size();
    }
    // About 20 each on average (quantity skew draws log-normal counts with that mean).
    CHECK(total > 5000 * 15);
    CHECK(total < 5000 * 25);
    CHECK(*partition(labels, spec) == *parts);
    if (split == SplitKind::dirichlet) CHECK(mean_top_class_share(*parts, labels) > 0.5);
    if (split == SplitKind::shards) {
      for (std::size_t d = 0; d < 50; ++d) {
        std::set<std::int64_t> classes;
        for (auto i : (*parts)[d]) classes.insert(labels[i]);
        CHECK(classes.size() <= 4);  // two runs of 10 sorted samples, each crossing at most one class boundary
      }
    }
  }
}

TEST_CASE("splits without replacement refuse more devices than samples, naming the way out") {
  const auto labels = balanced_labels(100);
  auto refused = partition(labels, PartitionSpec{.split = SplitKind::iid, .devices = 101});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message ==
        "fleet.devices is 101, but the 100 training samples cannot give each device 1; use fewer devices, or set "
        "fleet.samples_per_device to draw with replacement");
  CHECK_FALSE(partition(labels, PartitionSpec{.split = SplitKind::quantity, .devices = 2, .quantity_sigma = -1}));
  CHECK_FALSE(partition(labels, PartitionSpec{.devices = 0}));
}
