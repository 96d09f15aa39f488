#include "shoal/protocol/header.h"

#include "shoal/crypto/encoding.h"

#include <cmath>
#include <limits>

namespace shoal::protocol {
namespace {

// Bounds for msgpack's unpacker, far above anything a valid header holds
// and far below what would let one frame exhaust memory.
msgpack::unpack_limit header_unpack_limit(std::size_t frame_bytes) {
  return msgpack::unpack_limit(/*array=*/frame_bytes, /*map=*/256, /*str=*/frame_bytes,
                               /*bin=*/frame_bytes, /*ext=*/0, /*depth=*/8);
}

const char* type_name(msgpack::type::object_type type) {
  using T = msgpack::type::object_type;
  switch (type) {
    case T::NIL: return "nil";
    case T::BOOLEAN: return "bool";
    case T::POSITIVE_INTEGER: return "unsigned integer";
    case T::NEGATIVE_INTEGER: return "negative integer";
    case T::FLOAT32:
    case T::FLOAT64: return "float";
    case T::STR: return "string";
    case T::BIN: return "bytes";
    case T::ARRAY: return "array";
    case T::MAP: return "map";
    case T::EXT: return "ext";
  }
  return "unknown";
}

}  // namespace

msgpack::packer<msgpack::sbuffer>& HeaderWriter::key(std::string_view name) {
  ++count_;
  packer_.pack_str(static_cast<std::uint32_t>(name.size()));
  packer_.pack_str_body(name.data(), static_cast<std::uint32_t>(name.size()));
  return packer_;
}

HeaderWriter& HeaderWriter::put(std::string_view name, std::uint64_t value) {
  key(name).pack_uint64(value);
  return *this;
}

HeaderWriter& HeaderWriter::put(std::string_view name, std::int64_t value) {
  key(name).pack_int64(value);
  return *this;
}

HeaderWriter& HeaderWriter::put(std::string_view name, double value) {
  key(name).pack_double(value);
  return *this;
}

HeaderWriter& HeaderWriter::put(std::string_view name, bool value) {
  if (value) key(name).pack_true(); else key(name).pack_false();
  return *this;
}

HeaderWriter& HeaderWriter::put(std::string_view name, std::string_view value) {
  auto& packer = key(name);
  packer.pack_str(static_cast<std::uint32_t>(value.size()));
  packer.pack_str_body(value.data(), static_cast<std::uint32_t>(value.size()));
  return *this;
}

HeaderWriter& HeaderWriter::put_bytes(std::string_view name, std::span<const std::uint8_t> value) {
  auto& packer = key(name);
  packer.pack_bin(static_cast<std::uint32_t>(value.size()));
  packer.pack_bin_body(reinterpret_cast<const char*>(value.data()), static_cast<std::uint32_t>(value.size()));
  return *this;
}

HeaderWriter& HeaderWriter::put(std::string_view name, std::span<const std::uint64_t> values) {
  auto& packer = key(name);
  packer.pack_array(static_cast<std::uint32_t>(values.size()));
  for (std::uint64_t v : values) packer.pack_uint64(v);
  return *this;
}

HeaderWriter& HeaderWriter::put_map(std::string_view name, const HeaderWriter& nested) {
  key(name);
  const auto map = nested.finish();
  fields_.write(map.data(), map.size());
  return *this;
}

msgpack::sbuffer HeaderWriter::finish() const {
  msgpack::sbuffer out(fields_.size() + 8);
  msgpack::packer<msgpack::sbuffer> packer(out);
  packer.pack_map(static_cast<std::uint32_t>(count_));
  out.write(fields_.data(), fields_.size());
  return out;
}

Decoded<msgpack::object_handle> unpack_strict(std::span<const std::uint8_t> bytes, std::string_view what) {
  try {
    std::size_t offset = 0;
    msgpack::object_handle handle =
        msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset, nullptr,
                        nullptr, header_unpack_limit(bytes.size()));
    if (offset != bytes.size()) {
      return DecodeError{DecodeFault::malformed, std::string(what),
                         std::to_string(bytes.size() - offset) + " trailing bytes after the msgpack value"};
    }
    return handle;
  } catch (const std::exception& e) {
    // msgpack reports truncation, bad type bytes and limit breaches by throwing.
    return DecodeError{DecodeFault::malformed, std::string(what), std::string("not valid msgpack: ") + e.what()};
  }
}

Decoded<FieldMap> FieldMap::view(const msgpack::object& object, std::string path) {
  if (object.type != msgpack::type::MAP) {
    return DecodeError{DecodeFault::mistyped_field, path,
                       std::string("expected a map, got ") + type_name(object.type)};
  }
  const auto& map = object.via.map;
  for (std::uint32_t i = 0; i < map.size; ++i) {
    const auto& key = map.ptr[i].key;
    if (key.type != msgpack::type::STR) {
      return DecodeError{DecodeFault::malformed, path,
                         std::string("a key is a ") + type_name(key.type) + ", keys must be strings"};
    }
    const std::string_view name(key.via.str.ptr, key.via.str.size);
    for (std::uint32_t j = 0; j < i; ++j) {
      const auto& earlier = map.ptr[j].key;
      if (std::string_view(earlier.via.str.ptr, earlier.via.str.size) == name) {
        return DecodeError{DecodeFault::malformed, path.empty() ? std::string(name) : path + "." + std::string(name),
                           "key appears twice"};
      }
    }
  }
  return FieldMap(map, std::move(path));
}

const msgpack::object* FieldMap::find(std::string_view key) const {
  for (std::uint32_t i = 0; i < map_.size; ++i) {
    const auto& entry = map_.ptr[i];
    if (std::string_view(entry.key.via.str.ptr, entry.key.via.str.size) == key) return &entry.val;
  }
  return nullptr;
}

std::string FieldMap::qualified(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

Decoded<const msgpack::object*> FieldMap::require(std::string_view key, msgpack::type::object_type type,
                                                  const char* wanted) const {
  const msgpack::object* value = find(key);
  if (value == nullptr) return DecodeError{DecodeFault::missing_field, qualified(key), "required field is absent"};
  if (value->type != type) {
    return DecodeError{DecodeFault::mistyped_field, qualified(key),
                       std::string("expected ") + wanted + ", got " + type_name(value->type)};
  }
  return value;
}

Decoded<std::uint64_t> FieldMap::get_uint(std::string_view key) const {
  auto value = require(key, msgpack::type::POSITIVE_INTEGER, "unsigned integer");
  if (!value) return value.error();
  return (*value)->via.u64;
}

Decoded<std::int64_t> FieldMap::get_int(std::string_view key) const {
  const msgpack::object* value = find(key);
  if (value == nullptr) return DecodeError{DecodeFault::missing_field, qualified(key), "required field is absent"};
  if (value->type == msgpack::type::NEGATIVE_INTEGER) return value->via.i64;
  if (value->type == msgpack::type::POSITIVE_INTEGER) {
    if (value->via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return DecodeError{DecodeFault::invalid_value, qualified(key), "does not fit a signed 64-bit integer"};
    }
    return static_cast<std::int64_t>(value->via.u64);
  }
  return DecodeError{DecodeFault::mistyped_field, qualified(key),
                     std::string("expected integer, got ") + type_name(value->type)};
}

Decoded<double> FieldMap::get_double(std::string_view key) const {
  const msgpack::object* value = find(key);
  if (value == nullptr) return DecodeError{DecodeFault::missing_field, qualified(key), "required field is absent"};
  // msgpack-c packs a double with an integral value (1.0, -1.0) as an integer.
  if (value->type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(value->via.u64);
  if (value->type == msgpack::type::NEGATIVE_INTEGER) return static_cast<double>(value->via.i64);
  if (value->type != msgpack::type::FLOAT32 && value->type != msgpack::type::FLOAT64) {
    return DecodeError{DecodeFault::mistyped_field, qualified(key),
                       std::string("expected number, got ") + type_name(value->type)};
  }
  return value->via.f64;
}

Decoded<bool> FieldMap::get_bool(std::string_view key) const {
  auto value = require(key, msgpack::type::BOOLEAN, "bool");
  if (!value) return value.error();
  return (*value)->via.boolean;
}

Decoded<std::string> FieldMap::get_string(std::string_view key) const {
  auto value = require(key, msgpack::type::STR, "string");
  if (!value) return value.error();
  const std::string_view text((*value)->via.str.ptr, (*value)->via.str.size);
  if (text.size() > kMaxStringBytes) {
    return DecodeError{DecodeFault::invalid_value, qualified(key),
                       "a string of " + std::to_string(text.size()) + " bytes, at most " +
                           std::to_string(kMaxStringBytes) + " allowed"};
  }
  // A peer's text reaches logs and metrics: control characters (a newline
  // forging a log line, ANSI escapes) are escaped here, once, for every reader.
  return crypto::printable_text(text);
}

Decoded<std::span<const std::uint8_t>> FieldMap::get_bytes(std::string_view key) const {
  auto value = require(key, msgpack::type::BIN, "bytes");
  if (!value) return value.error();
  return std::span(reinterpret_cast<const std::uint8_t*>((*value)->via.bin.ptr), (*value)->via.bin.size);
}

Decoded<std::vector<std::uint64_t>> FieldMap::get_uint_array(std::string_view key) const {
  auto value = require(key, msgpack::type::ARRAY, "array of unsigned integers");
  if (!value) return value.error();
  const auto& array = (*value)->via.array;
  std::vector<std::uint64_t> out;
  out.reserve(array.size);
  for (std::uint32_t i = 0; i < array.size; ++i) {
    if (array.ptr[i].type != msgpack::type::POSITIVE_INTEGER) {
      return DecodeError{DecodeFault::mistyped_field, qualified(key) + "[" + std::to_string(i) + "]",
                         std::string("expected unsigned integer, got ") + type_name(array.ptr[i].type)};
    }
    out.push_back(array.ptr[i].via.u64);
  }
  return out;
}

Decoded<FieldMap> FieldMap::get_map(std::string_view key) const {
  const msgpack::object* value = find(key);
  if (value == nullptr) return DecodeError{DecodeFault::missing_field, qualified(key), "required field is absent"};
  return view(*value, qualified(key));
}

}  // namespace shoal::protocol
