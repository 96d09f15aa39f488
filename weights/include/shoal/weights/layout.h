// Layout: the ordered list of a model's parameters (names, shapes, dtypes)
// that gives meaning to a flat parameter vector. Every piece of federated
// maths in shoal works on one float32 vector in this canonical order; the
// layout hash identifies the order, so two parties can check they mean the
// same thing by a vector before they add, mask or patch one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/crypto/hash.h"
#include "shoal/crypto/result.h"

namespace shoal::weights {

// The dtype a parameter has in its model; the flat vector always holds float32.
enum class DType : std::uint8_t { float32 = 1, float16 = 2, bfloat16 = 3 };

const char* to_string(DType dtype);
Result<DType> parse_dtype(std::uint8_t code);

struct TensorSpec {
  std::string name;                 // e.g. "conv1.weight"
  std::vector<std::int64_t> shape;  // e.g. {32, 1, 3, 3}; {} is a scalar
  DType dtype = DType::float32;

  std::uint64_t element_count() const;
  friend bool operator==(const TensorSpec&, const TensorSpec&) = default;
};

using LayoutHash = crypto::Blake2b256Digest;

class Layout {
 public:
  // Fails on an empty or repeated name, a negative dimension, or an element
  // count that does not fit in memory.
  static Result<Layout> create(std::vector<TensorSpec> tensors);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  // Total number of float32 values in the flat vector.
  std::uint64_t parameter_count() const { return parameter_count_; }
  // Position of tensor `index`'s first value in the flat vector.
  std::uint64_t offset(std::size_t index) const { return offsets_.at(index); }
  // The index of the tensor called `name`, if any.
  std::optional<std::size_t> find(std::string_view name) const;

  // BLAKE2b-256 of the canonical encoding (names, dtypes, shapes, in order):
  // equal for equal layouts on every platform, different when anything differs.
  const LayoutHash& hash() const { return hash_; }
  // The first 16 hex digits of hash(), for messages.
  std::string short_hash() const;

  friend bool operator==(const Layout& a, const Layout& b) { return a.hash_ == b.hash_; }

 private:
  Layout() = default;
  std::vector<TensorSpec> tensors_;
  std::vector<std::uint64_t> offsets_;
  std::uint64_t parameter_count_ = 0;
  LayoutHash hash_{};
};

// An error naming both layout hashes, for every place that finds a mismatch.
Error layout_mismatch(std::string_view what, const Layout& expected, const Layout& actual);

}  // namespace shoal::weights
