// Internal: the canonical byte encoding of a layout, used both for the
// layout hash and inside the weights file header, so the two cannot drift.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shoal/weights/layout.h"

namespace shoal::weights::detail {

inline void append_u8(std::vector<std::uint8_t>& out, std::uint8_t v) { out.push_back(v); }

template <typename T>
void append_le(std::vector<std::uint8_t>& out, T value) {
  using U = std::make_unsigned_t<T>;
  const auto bits = static_cast<U>(value);
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<std::uint8_t>(bits >> (8 * i)));
}

// tensor count u32, then per tensor: name length u16, name, dtype u8, rank u8, dims i64.
void append_layout(std::vector<std::uint8_t>& out, const std::vector<TensorSpec>& tensors);

// Reads little-endian fields from a byte range, reporting where it ran out.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  template <typename T>
  Result<T> read_le(const char* what) {
    if (size_ - position_ < sizeof(T)) return truncated(what);
    std::make_unsigned_t<T> value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      value |= static_cast<std::make_unsigned_t<T>>(data_[position_ + i]) << (8 * i);
    }
    position_ += sizeof(T);
    return static_cast<T>(value);
  }
  Result<std::string> read_string(std::size_t length, const char* what);
  std::size_t position() const { return position_; }
  std::size_t remaining() const { return size_ - position_; }

 private:
  Error truncated(const char* what) const;

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

// Parses what append_layout wrote; error messages name the tensor.
Result<std::vector<TensorSpec>> read_layout(ByteReader& reader);

}  // namespace shoal::weights::detail
