#include "layout_encoding.h"

namespace shoal::weights::detail {

void append_layout(std::vector<std::uint8_t>& out, const std::vector<TensorSpec>& tensors) {
  append_le(out, static_cast<std::uint32_t>(tensors.size()));
  for (const auto& tensor : tensors) {
    append_le(out, static_cast<std::uint16_t>(tensor.name.size()));
    out.insert(out.end(), tensor.name.begin(), tensor.name.end());
    append_u8(out, static_cast<std::uint8_t>(tensor.kind));
    append_u8(out, static_cast<std::uint8_t>(tensor.dtype));
    append_u8(out, static_cast<std::uint8_t>(tensor.shape.size()));
    for (std::int64_t dim : tensor.shape) append_le(out, dim);
  }
}

Result<std::vector<TensorSpec>> read_layout(ByteReader& reader, LayoutEncoding encoding) {
  auto count = reader.read_le<std::uint32_t>("the tensor count");
  if (!count) return count.error();
  // Every tensor takes at least 4 bytes, so a count beyond that is a lie.
  if (*count > reader.remaining() / 4) {
    return make_error(ErrorCode::corrupt, "tensor count " + std::to_string(*count) + " does not fit in the header");
  }
  std::vector<TensorSpec> tensors(*count);
  for (std::uint32_t i = 0; i < *count; ++i) {
    auto& tensor = tensors[i];
    const std::string where = "tensor " + std::to_string(i);
    auto name_length = reader.read_le<std::uint16_t>("a tensor name length");
    if (!name_length) return name_length.error();
    auto name = reader.read_string(*name_length, "a tensor name");
    if (!name) return name.error();
    tensor.name = std::move(name).value();
    if (encoding == LayoutEncoding::with_kinds) {
      auto kind_code = reader.read_le<std::uint8_t>("a tensor kind");
      if (!kind_code) return kind_code.error();
      auto kind = parse_tensor_kind(*kind_code);
      if (!kind) return make_error(ErrorCode::corrupt, where + " '" + tensor.name + "': " + kind.error().message);
      tensor.kind = *kind;
    }
    auto dtype_code = reader.read_le<std::uint8_t>("a dtype");
    if (!dtype_code) return dtype_code.error();
    auto dtype = parse_dtype(*dtype_code);
    if (!dtype) return make_error(ErrorCode::corrupt, where + " '" + tensor.name + "': " + dtype.error().message);
    tensor.dtype = *dtype;
    auto rank = reader.read_le<std::uint8_t>("a tensor rank");
    if (!rank) return rank.error();
    for (std::uint8_t d = 0; d < *rank; ++d) {
      auto dim = reader.read_le<std::int64_t>("a tensor dimension");
      if (!dim) return dim.error();
      tensor.shape.push_back(*dim);
    }
  }
  return tensors;
}

}  // namespace shoal::weights::detail
