#include "shoal/client/dataset.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace shoal::client {

std::size_t Dataset::sample_size() const {
  return static_cast<std::size_t>(
      std::accumulate(sample_shape.begin(), sample_shape.end(), std::int64_t{1}, std::multiplies<>()));
}

std::int64_t Dataset::class_count() const {
  return labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end()) + 1;
}

Dataset Dataset::subset(std::span<const std::size_t> indices) const {
  Dataset out;
  out.sample_shape = sample_shape;
  out.features.reserve(indices.size() * sample_size());
  out.labels.reserve(indices.size());
  for (std::size_t index : indices) {
    const auto values = sample(index);
    out.features.insert(out.features.end(), values.begin(), values.end());
    out.labels.push_back(labels.at(index));
  }
  return out;
}

Dataset make_synthetic(const SyntheticSpec& spec) {
  Dataset data;
  data.sample_shape = spec.sample_shape;
  const std::size_t width = data.sample_size();
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> means(static_cast<std::size_t>(spec.classes) * width);
  for (auto& m : means) m = spec.separation * normal(rng);
  std::uniform_int_distribution<std::int64_t> pick(0, spec.classes - 1);
  data.features.resize(spec.samples * width);
  data.labels.resize(spec.samples);
  for (std::size_t i = 0; i < spec.samples; ++i) {
    const std::int64_t label = pick(rng);
    data.labels[i] = label;
    for (std::size_t j = 0; j < width; ++j) {
      data.features[i * width + j] = means[static_cast<std::size_t>(label) * width + j] + normal(rng);
    }
  }
  return data;
}

}  // namespace shoal::client
