// Message headers: a msgpack map of named fields, written by HeaderWriter and
// read through FieldMap's typed getters.
//
// A getter returns the value or a DecodeError naming the field (with its path
// for nested maps, "plan.epochs") and saying whether it was missing or of the
// wrong type. Fields a reader does not ask for are ignored, so a newer peer
// can add optional fields without breaking older ones.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/protocol/decode_error.h"

namespace shoal::protocol {

template <typename T>
using Decoded = Result<T, DecodeError>;

// The longest string field a message may carry.
inline constexpr std::size_t kMaxStringBytes = 4096;

// Builds one msgpack map. Field order is the order of the calls.
class HeaderWriter {
 public:
  HeaderWriter& put(std::string_view key, std::uint64_t value);
  HeaderWriter& put(std::string_view key, std::int64_t value);
  HeaderWriter& put(std::string_view key, double value);
  HeaderWriter& put(std::string_view key, bool value);
  HeaderWriter& put(std::string_view key, std::string_view value);
  HeaderWriter& put(std::string_view key, const char* value) { return put(key, std::string_view(value)); }
  HeaderWriter& put_bytes(std::string_view key, std::span<const std::uint8_t> value);
  HeaderWriter& put(std::string_view key, std::span<const std::uint64_t> values);
  HeaderWriter& put_map(std::string_view key, const HeaderWriter& nested);

  std::size_t field_count() const { return count_; }
  // The complete map: map header followed by the fields.
  msgpack::sbuffer finish() const;

 private:
  msgpack::packer<msgpack::sbuffer>& key(std::string_view name);

  msgpack::sbuffer fields_;
  msgpack::packer<msgpack::sbuffer> packer_{fields_};
  std::size_t count_ = 0;
};

// A read-only view of a decoded msgpack map. It borrows the decoded object:
// it must not outlive the Envelope (or object handle) it came from.
class FieldMap {
 public:
  // Fails unless `object` is a map whose keys are distinct strings.
  static Decoded<FieldMap> view(const msgpack::object& object, std::string path);

  Decoded<std::uint64_t> get_uint(std::string_view key) const;
  Decoded<std::int64_t> get_int(std::string_view key) const;
  Decoded<double> get_double(std::string_view key) const;
  Decoded<bool> get_bool(std::string_view key) const;
  // A string field of at most kMaxStringBytes, its control characters
  // (below 0x20, and 0x7f) escaped as \xNN: peers' strings are only ever
  // names and explanations, and they end up in logs.
  Decoded<std::string> get_string(std::string_view key) const;
  // Borrowed bytes of a msgpack bin field.
  Decoded<std::span<const std::uint8_t>> get_bytes(std::string_view key) const;
  Decoded<std::vector<std::uint64_t>> get_uint_array(std::string_view key) const;
  Decoded<FieldMap> get_map(std::string_view key) const;

  bool has(std::string_view key) const { return find(key) != nullptr; }
  const std::string& path() const { return path_; }

 private:
  FieldMap(msgpack::object_map map, std::string path) : map_(map), path_(std::move(path)) {}
  const msgpack::object* find(std::string_view key) const;
  Decoded<const msgpack::object*> require(std::string_view key, msgpack::type::object_type type,
                                          const char* type_name) const;
  std::string qualified(std::string_view key) const;

  // A copy of the map's {size, ptr}: ptr points into the msgpack zone, which
  // stays put when the owning object_handle is moved.
  msgpack::object_map map_;
  std::string path_;
};

// Parses one msgpack object from `bytes` with bounded sizes and depth, and
// refuses trailing bytes. `what` names the frame in errors.
Decoded<msgpack::object_handle> unpack_strict(std::span<const std::uint8_t> bytes, std::string_view what);

}  // namespace shoal::protocol
