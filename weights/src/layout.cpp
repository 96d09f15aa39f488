#include "shoal/weights/layout.h"

#include <set>

#include "layout_encoding.h"
#include "shoal/crypto/encoding.h"

namespace shoal::weights {
namespace {

// 2^36 float32 values is 256 GiB: far beyond any model shoal ships, and far
// below where element counts could overflow.
constexpr std::uint64_t kMaxParameters = std::uint64_t{1} << 36;

}  // namespace

const char* to_string(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
  }
  return "unknown";
}

Result<DType> parse_dtype(std::uint8_t code) {
  for (DType dtype : {DType::float32, DType::float16, DType::bfloat16}) {
    if (code == static_cast<std::uint8_t>(dtype)) return dtype;
  }
  return make_error(ErrorCode::corrupt, "unknown dtype code " + std::to_string(code));
}

std::uint64_t TensorSpec::element_count() const {
  std::uint64_t count = 1;
  for (std::int64_t dim : shape) count *= static_cast<std::uint64_t>(dim);
  return count;
}

Result<Layout> Layout::create(std::vector<TensorSpec> tensors) {
  Layout layout;
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& tensor = tensors[i];
    const std::string where = "layout tensor " + std::to_string(i) + " '" + tensor.name + "'";
    if (tensor.name.empty()) return make_error(ErrorCode::invalid_argument, where + ": empty name");
    if (tensor.name.size() > 0xffff) return make_error(ErrorCode::invalid_argument, where + ": name too long");
    if (!names.insert(tensor.name).second) return make_error(ErrorCode::invalid_argument, where + ": name repeated");
    if (tensor.shape.size() > 0xff) return make_error(ErrorCode::invalid_argument, where + ": rank above 255");
    std::uint64_t count = 1;
    for (std::int64_t dim : tensor.shape) {
      if (dim < 0) return make_error(ErrorCode::invalid_argument, where + ": negative dimension");
      if (dim != 0 && count > kMaxParameters / static_cast<std::uint64_t>(dim)) {
        return make_error(ErrorCode::invalid_argument, where + ": too many elements");
      }
      count *= static_cast<std::uint64_t>(dim);
    }
    layout.offsets_.push_back(layout.parameter_count_);
    layout.parameter_count_ += count;
    if (layout.parameter_count_ > kMaxParameters) {
      return make_error(ErrorCode::invalid_argument, where + ": the layout exceeds 2^36 parameters");
    }
  }
  std::vector<std::uint8_t> encoding;
  detail::append_layout(encoding, tensors);
  layout.hash_ = crypto::blake2b256(encoding);
  layout.tensors_ = std::move(tensors);
  return layout;
}

std::optional<std::size_t> Layout::find(std::string_view name) const {
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].name == name) return i;
  }
  return std::nullopt;
}

std::string Layout::short_hash() const { return crypto::to_hex(std::span(hash_).first(8)); }

Error layout_mismatch(std::string_view what, const Layout& expected, const Layout& actual) {
  return make_error(ErrorCode::invalid_argument,
                    std::string(what) + ": layout " + actual.short_hash() + " (" +
                        std::to_string(actual.parameter_count()) + " parameters) does not match the expected layout " +
                        expected.short_hash() + " (" + std::to_string(expected.parameter_count()) + " parameters)");
}

}  // namespace shoal::weights
