// Weights: a model version's whole state (parameters, then buffers) as one
// contiguous float32 vector in the canonical order of its Layout. This is
// the currency of shoal: training produces it, updates are differences of
// it, the aggregator sums it, releases ship it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/weights/layout.h"

namespace shoal::weights {

class Weights {
 public:
  // All-zero weights for `layout`.
  Weights(Layout layout, std::uint64_t version);
  // Fails unless values.size() == layout.value_count().
  static Result<Weights> from_values(Layout layout, std::uint64_t version, std::vector<float> values);

  const Layout& layout() const { return layout_; }
  std::uint64_t version() const { return version_; }
  void set_version(std::uint64_t version) { version_ = version; }

  std::span<float> values() { return values_; }
  std::span<const float> values() const { return values_; }
  // The values of tensor `index` of the layout.
  std::span<const float> tensor(std::size_t index) const;

 private:
  Weights(Layout layout, std::uint64_t version, std::vector<float> values)
      : layout_(std::move(layout)), version_(version), values_(std::move(values)) {}

  Layout layout_;
  std::uint64_t version_;
  std::vector<float> values_;
};

}  // namespace shoal::weights
