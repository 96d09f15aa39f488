// Layout: the ordered list of a model's state tensors (names, kinds, shapes,
// dtypes) that gives meaning to a flat vector. Every piece of federated maths
// in shoal works on one float32 vector in this canonical order; the layout
// hash identifies the order, so two parties can check they mean the same
// thing by a vector before they add, mask or patch one.
//
// The canonical order is the model's parameters in registration order, then
// its buffers (BatchNorm's running_mean, running_var, num_batches_tracked...)
// in registration order: the parameters are a prefix of the flat vector,
// which is what server optimisers step. An int64 buffer is held as float32
// values, which are exact integers up to 2^24 (16,777,216) in magnitude.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/hash.h"

namespace shoal::weights {

// The dtype a tensor has in its model; the flat vector always holds float32.
enum class DType : std::uint8_t { float32 = 1, float16 = 2, bfloat16 = 3, int64 = 4 };

const char* to_string(DType dtype);
Result<DType> parse_dtype(std::uint8_t code);

// A parameter is trained by gradients; a buffer is other model state that
// training changes (running statistics, counters).
enum class TensorKind : std::uint8_t { parameter = 0, buffer = 1 };

const char* to_string(TensorKind kind);
Result<TensorKind> parse_tensor_kind(std::uint8_t code);

struct TensorSpec {
  std::string name;                 // e.g. "conv1.weight"
  std::vector<std::int64_t> shape;  // e.g. {32, 1, 3, 3}; {} is a scalar
  DType dtype = DType::float32;
  TensorKind kind = TensorKind::parameter;

  std::uint64_t element_count() const;
  friend bool operator==(const TensorSpec&, const TensorSpec&) = default;
};

using LayoutHash = crypto::Blake2b256Digest;

class Layout {
 public:
  // Fails on an empty or repeated name, a negative dimension, an element
  // count that does not fit in memory, a parameter after a buffer, or an
  // int64 parameter.
  static Result<Layout> create(std::vector<TensorSpec> tensors);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  // Total number of float32 values in the flat vector, buffers included.
  std::uint64_t value_count() const { return value_count_; }
  // Values that belong to parameters: the flat vector's first
  // parameter_value_count() values; the buffers' follow.
  std::uint64_t parameter_value_count() const { return parameter_value_count_; }
  bool has_buffers() const { return parameter_value_count_ < value_count_; }
  // The layout of the parameters alone (what a server optimiser's moments follow).
  Layout parameter_layout() const;
  // Position of tensor `index`'s first value in the flat vector.
  std::uint64_t offset(std::size_t index) const { return offsets_.at(index); }
  // The index of the tensor called `name`, if any.
  std::optional<std::size_t> find(std::string_view name) const;

  // BLAKE2b-256 of the canonical encoding (names, kinds, dtypes, shapes, in order):
  // equal for equal layouts on every platform, different when anything differs.
  const LayoutHash& hash() const { return hash_; }
  // The first 16 hex digits of hash(), for messages.
  std::string short_hash() const;

  friend bool operator==(const Layout& a, const Layout& b) { return a.hash_ == b.hash_; }

 private:
  Layout() = default;
  std::vector<TensorSpec> tensors_;
  std::vector<std::uint64_t> offsets_;
  std::uint64_t value_count_ = 0;
  std::uint64_t parameter_value_count_ = 0;
  LayoutHash hash_{};
};

// The indices (ascending) of the tensors whose names match any of the glob
// patterns (fnmatch: `*` and `?` match dots too, e.g. "bn*.running_*"). A
// pattern that matches no tensor is an error naming it: it is a typo.
Result<std::vector<std::uint64_t>> match_tensors(const Layout& layout, const std::vector<std::string>& patterns);

// An error naming both layout hashes, for every place that finds a mismatch.
Error layout_mismatch(std::string_view what, const Layout& expected, const Layout& actual);

}  // namespace shoal::weights
