#include "shoal/base/byte_io.h"

namespace shoal::base {

Error ByteReader::truncated(const char* what) const {
  return make_error(ErrorCode::corrupt, buffer_ + " ends at byte " + std::to_string(size_) + " while reading " +
                                            what + " (truncated?)");
}

Result<std::string> ByteReader::read_string(std::size_t length, const char* what) {
  auto bytes = read_bytes(length, what);
  if (!bytes) return bytes.error();
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

Result<std::span<const std::uint8_t>> ByteReader::read_bytes(std::size_t length, const char* what) {
  if (size_ - position_ < length) return truncated(what);
  const std::span<const std::uint8_t> bytes(data_ + position_, length);
  position_ += length;
  return bytes;
}

}  // namespace shoal::base
