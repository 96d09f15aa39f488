// Local datasets: what a device trains and evaluates on. The data never
// leaves the device; only updates computed from it do.
//
// A Dataset is samples of one shape with integer class labels, held in one
// float buffer. Sources: IDX files (LeCun's MNIST format, plain or gzip,
// as Debian's dataset-fashion-mnist installs them), CSV files of features
// and a label, and a seeded synthetic generator. Malformed files are errors
// naming the file and the offset or line, never a partial dataset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::client {

struct Dataset {
  std::vector<std::int64_t> sample_shape;  // e.g. {1, 28, 28}
  std::vector<float> features;             // size() * sample_size() values, sample-major
  std::vector<std::int64_t> labels;        // one per sample, 0 .. classes-1

  std::size_t size() const { return labels.size(); }
  std::size_t sample_size() const;
  std::span<const float> sample(std::size_t index) const {
    return std::span<const float>(features).subspan(index * sample_size(), sample_size());
  }
  // Number of classes: the largest label plus one (0 when empty).
  std::int64_t class_count() const;
  // The samples at `indices`, in that order.
  Dataset subset(std::span<const std::size_t> indices) const;
};

// IDX images (unsigned bytes, [n, rows, cols]) scaled to [0, 1] with sample
// shape {1, rows, cols}, and IDX labels (unsigned bytes, [n]).
Result<Dataset> load_idx(const std::filesystem::path& images, const std::filesystem::path& labels);

// One sample per line: comma-separated features, the label last. A first
// line that is not numeric is taken as a header and skipped.
Result<Dataset> load_csv(const std::filesystem::path& path);

struct SyntheticSpec {
  std::size_t samples = 1000;
  std::int64_t classes = 10;
  std::vector<std::int64_t> sample_shape = {1, 28, 28};
  std::uint64_t seed = 0;
  float separation = 1.0f;  // spread of the class means; larger is easier
};

// Gaussian classes: each class has a random mean; a sample is its class
// mean plus unit noise. The same spec gives the same data.
Dataset make_synthetic(const SyntheticSpec& spec);

}  // namespace shoal::client
