#include "shoal/weights/layout.h"

#include <fnmatch.h>

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
    case DType::int64: return "int64";
  }
  return "unknown";
}

Result<DType> parse_dtype(std::uint8_t code) {
  for (DType dtype : {DType::float32, DType::float16, DType::bfloat16, DType::int64}) {
    if (code == static_cast<std::uint8_t>(dtype)) return dtype;
  }
  return make_error(ErrorCode::corrupt, "unknown dtype code " + std::to_string(code));
}

const char* to_string(TensorKind kind) { return kind == TensorKind::parameter ? "parameter" : "buffer"; }

Result<TensorKind> parse_tensor_kind(std::uint8_t code) {
  for (TensorKind kind : {TensorKind::parameter, TensorKind::buffer}) {
    if (code == static_cast<std::uint8_t>(kind)) return kind;
  }
  return make_error(ErrorCode::corrupt, "unknown tensor kind code " + std::to_string(code));
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
    const bool parameter = tensor.kind == TensorKind::parameter;
    if (parameter && layout.value_count_ > layout.parameter_value_count_) {
      return make_error(ErrorCode::invalid_argument, where + ": a parameter after a buffer (parameters come first)");
    }
    if (parameter && tensor.dtype == DType::int64) {
      return make_error(ErrorCode::invalid_argument, where + ": an int64 parameter (only buffers may be integers)");
    }
    std::uint64_t count = 1;
    for (std::int64_t dim : tensor.shape) {
      if (dim < 0) return make_error(ErrorCode::invalid_argument, where + ": negative dimension");
      if (dim != 0 && count > kMaxParameters / static_cast<std::uint64_t>(dim)) {
        return make_error(ErrorCode::invalid_argument, where + ": too many elements");
      }
      count *= static_cast<std::uint64_t>(dim);
    }
    layout.offsets_.push_back(layout.value_count_);
    layout.value_count_ += count;
    if (parameter) layout.parameter_value_count_ = layout.value_count_;
    if (layout.value_count_ > kMaxParameters) {
      return make_error(ErrorCode::invalid_argument, where + ": the layout exceeds 2^36 values");
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

Layout Layout::parameter_layout() const {
  if (!has_buffers()) return *this;
  std::vector<TensorSpec> parameters;
  for (const auto& tensor : tensors_) {
    if (tensor.kind == TensorKind::parameter) parameters.push_back(tensor);
  }
  return *Layout::create(std::move(parameters));  // a prefix of a valid layout is valid
}

std::string Layout::short_hash() const { return crypto::to_hex(std::span(hash_).first(8)); }

Result<std::vector<std::uint64_t>> match_tensors(const Layout& layout, const std::vector<std::string>& patterns) {
  std::set<std::uint64_t> matched;
  for (const auto& pattern : patterns) {
    bool any = false;
    for (std::size_t i = 0; i < layout.tensors().size(); ++i) {
      if (::fnmatch(pattern.c_str(), layout.tensors()[i].name.c_str(), 0) != 0) continue;
      matched.insert(i);
      any = true;
    }
    if (!any) {
      return make_error(ErrorCode::invalid_argument, "pattern '" + pattern + "' matches no tensor of layout " +
                                                         layout.short_hash() + " (its first tensor is '" +
                                                         (layout.tensors().empty() ? "" : layout.tensors()[0].name) + "')");
    }
  }
  return std::vector<std::uint64_t>(matched.begin(), matched.end());
}

namespace {

std::string describe(const Layout& layout) {
  std::size_t buffers = 0;
  for (const auto& tensor : layout.tensors()) buffers += tensor.kind == TensorKind::buffer ? 1 : 0;
  return layout.short_hash() + " (" + std::to_string(layout.value_count()) + " values in " +
         std::to_string(layout.tensors().size() - buffers) + " parameters and " + std::to_string(buffers) + " buffers)";
}

}  // namespace

Error layout_mismatch(std::string_view what, const Layout& expected, const Layout& actual) {
  std::string message = std::string(what) + ": layout " + describe(actual) + " does not match the expected layout " +
                        describe(expected);
  if (expected.has_buffers() && !actual.has_buffers() && expected.parameter_layout() == actual.parameter_layout()) {
    message += "; the parameters match but the buffers are missing (weights written before shoal stored buffers?)";
  }
  return make_error(ErrorCode::invalid_argument, message);
}

}  // namespace shoal::weights
