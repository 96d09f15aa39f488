// Little-endian fields in byte buffers, for the binary formats (weights
// files, release deltas): append_le writes them, ByteReader reads them back
// and reports where a buffer ran out.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::base {

// The bytes of a text, for hashing, signing or writing it.
inline std::span<const std::uint8_t> text_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

inline void append_u8(std::vector<std::uint8_t>& out, std::uint8_t v) { out.push_back(v); }

template <typename T>
void append_le(std::vector<std::uint8_t>& out, T value) {
  using U = std::make_unsigned_t<T>;
  const auto bits = static_cast<U>(value);
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<std::uint8_t>(bits >> (8 * i)));
}

inline void append_bytes(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

class ByteReader {
 public:
  // `buffer` names what is read in errors ("header", "delta").
  ByteReader(const std::uint8_t* data, std::size_t size, std::string buffer = "header")
      : data_(data), size_(size), buffer_(std::move(buffer)) {}

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
  // The next `length` bytes, borrowed from the buffer.
  Result<std::span<const std::uint8_t>> read_bytes(std::size_t length, const char* what);
  std::size_t position() const { return position_; }
  std::size_t remaining() const { return size_ - position_; }

 private:
  Error truncated(const char* what) const;

  const std::uint8_t* data_;
  std::size_t size_;
  std::string buffer_;
  std::size_t position_ = 0;
};

}  // namespace shoal::base
