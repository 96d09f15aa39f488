#include "shoal/client/dataset.h"

#include <catch2/catch.hpp>

using namespace shoal::client;

TEST_CASE("synthetic data is determined by its spec") {
  SyntheticSpec spec;
  spec.samples = 200;
  spec.classes = 4;
  spec.sample_shape = {3, 5};
  spec.seed = 11;
  const auto a = make_synthetic(spec), b = make_synthetic(spec);
  CHECK(a.features == b.features);
  CHECK(a.labels == b.labels);
  CHECK(a.size() == 200);
  CHECK(a.sample_size() == 15);
  CHECK(a.class_count() == 4);
  spec.seed = 12;
  CHECK(make_synthetic(spec).features != a.features);
}

TEST_CASE("synthetic classes are separated: each sample is nearer its own class mean") {
  SyntheticSpec spec;
  spec.samples = 400;
  spec.classes = 3;
  spec.sample_shape = {50};
  spec.separation = 2.0f;
  const auto data = make_synthetic(spec);
  std::vector<std::vector<double>> means(3, std::vector<double>(50, 0.0));
  std::vector<int> counts(3, 0);
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto c = static_cast<std::size_t>(data.labels[i]);
    ++counts[c];
    for (std::size_t j = 0; j < 50; ++j) means[c][j] += data.sample(i)[j];
  }
  for (std::size_t c = 0; c < 3; ++c) for (auto& m : means[c]) m /= counts[c];
  std::size_t correct = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    std::size_t best = 0;
    double best_distance = 1e300;
    for (std::size_t c = 0; c < 3; ++c) {
      double d = 0;
      for (std::size_t j = 0; j < 50; ++j) d += (data.sample(i)[j] - means[c][j]) * (data.sample(i)[j] - means[c][j]);
      if (d < best_distance) best_distance = d, best = c;
    }
    correct += best == static_cast<std::size_t>(data.labels[i]);
  }
  CHECK(correct > 0.95 * data.size());
}

TEST_CASE("a subset holds the chosen samples in the chosen order") {
  SyntheticSpec spec;
  spec.samples = 10;
  spec.sample_shape = {2};
  const auto data = make_synthetic(spec);
  const std::vector<std::size_t> picked = {7, 2, 7};
  const auto subset = data.subset(picked);
  REQUIRE(subset.size() == 3);
  CHECK(subset.labels[0] == data.labels[7]);
  CHECK(subset.sample(1)[0] == data.sample(2)[0]);
  CHECK(subset.sample(2)[1] == data.sample(7)[1]);
}
