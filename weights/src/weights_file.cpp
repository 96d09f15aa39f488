#include "shoal/weights/weights_file.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <fstream>

#include "layout_encoding.h"
#include "shoal/base/durable_file.h"

namespace shoal::weights {
namespace {

constexpr char kMagic[8] = {'S', 'H', 'O', 'A', 'L', 'W', 'T', 'S'};
constexpr std::size_t kPrefixBytes = 16;   // magic, format version, header length
constexpr std::size_t kPayloadAlignment = 64;
constexpr std::uint32_t kMaxHeaderBytes = 64u << 20;

static_assert(std::endian::native == std::endian::little,
              "the weights payload is little-endian float32 and is written and read in place");

std::size_t payload_offset(std::size_t header_bytes) {
  const std::size_t end = kPrefixBytes + header_bytes + crypto::kBlake2b256Bytes;
  return (end + kPayloadAlignment - 1) / kPayloadAlignment * kPayloadAlignment;
}

std::span<const std::uint8_t> bytes_of(std::span<const float> values) {
  return {reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()};
}

// Errors name where the bytes came from: "weights file 'v1.weights'", or a message payload.
Error source_error(std::string_view source, ErrorCode code, const std::string& what) {
  return make_error(code, std::string(source) + ": " + what);
}

std::string file_source(const std::filesystem::path& path) { return "weights file '" + path.string() + "'"; }

// Everything before the payload: prefix, header, header hash, padding.
std::vector<std::uint8_t> encode_head(const Weights& weights) {
  std::vector<std::uint8_t> header;
  detail::append_le(header, weights.version());
  detail::append_layout(header, weights.layout().tensors());
  const auto payload_hash = crypto::blake2b256(bytes_of(weights.values()));
  header.insert(header.end(), payload_hash.begin(), payload_hash.end());

  std::vector<std::uint8_t> head(kMagic, kMagic + sizeof kMagic);
  detail::append_le(head, kWeightsFormatVersion);
  detail::append_le(head, static_cast<std::uint32_t>(header.size()));
  head.insert(head.end(), header.begin(), header.end());
  const auto header_hash = crypto::blake2b256(head);
  head.insert(head.end(), header_hash.begin(), header_hash.end());
  head.resize(payload_offset(header.size()), 0);
  return head;
}

struct Prefix {
  std::uint32_t format;
  std::uint32_t header_bytes;
};

// The 16-byte prefix: magic, format version, header length. Returns them
// once the header fits in `total_size` bytes.
Result<Prefix> read_prefix(std::span<const std::uint8_t> prefix, std::uint64_t total_size,
                                  std::string_view source) {
  if (prefix.size() < kPrefixBytes) {
    return source_error(source, ErrorCode::corrupt,
                        "only " + std::to_string(total_size) + " bytes, too short for a header");
  }
  if (std::memcmp(prefix.data(), kMagic, sizeof kMagic) != 0) {
    return source_error(source, ErrorCode::corrupt, "not a shoal weights file (no SHOALWTS magic)");
  }
  detail::ByteReader reader(prefix.data() + sizeof kMagic, kPrefixBytes - sizeof kMagic);
  const std::uint32_t format = *reader.read_le<std::uint32_t>("the format version");
  const std::uint32_t header_bytes = *reader.read_le<std::uint32_t>("the header length");
  if (format != 1 && format != kWeightsFormatVersion) {
    return source_error(source, ErrorCode::unsupported,
                        "format version " + std::to_string(format) + ", this build reads versions 1 and " +
                            std::to_string(kWeightsFormatVersion));
  }
  if (header_bytes > kMaxHeaderBytes || kPrefixBytes + header_bytes + crypto::kBlake2b256Bytes > total_size) {
    return source_error(source, ErrorCode::corrupt,
                        "header of " + std::to_string(header_bytes) + " bytes does not fit in the " +
                            std::to_string(total_size) + "-byte file (truncated?)");
  }
  return Prefix{format, header_bytes};
}

struct Head {
  std::uint64_t version;
  Layout layout;
  std::string payload_hash;
  std::uint64_t payload_offset;
};

// Checks and parses the head (prefix, header, header hash), and that the
// whole is exactly as long as the layout says.
Result<Head> read_head(std::span<const std::uint8_t> head, Prefix prefix, std::uint64_t total_size,
                       std::string_view source) {
  const std::uint32_t header_bytes = prefix.header_bytes;
  const auto header_hash = crypto::blake2b256(head.first(kPrefixBytes + header_bytes));
  if (!std::equal(header_hash.begin(), header_hash.end(), head.end() - crypto::kBlake2b256Bytes)) {
    return source_error(source, ErrorCode::corrupt, "header checksum mismatch (the header was damaged)");
  }
  detail::ByteReader reader(head.data() + kPrefixBytes, header_bytes);
  auto version = reader.read_le<std::uint64_t>("the model version");
  if (!version) return source_error(source, ErrorCode::corrupt, version.error().message);
  auto tensors = detail::read_layout(
      reader, prefix.format == 1 ? detail::LayoutEncoding::without_kinds : detail::LayoutEncoding::with_kinds);
  if (!tensors) return source_error(source, ErrorCode::corrupt, tensors.error().message);
  auto layout = Layout::create(std::move(tensors).value());
  if (!layout) return source_error(source, ErrorCode::corrupt, layout.error().message);
  auto payload_hash = reader.read_string(crypto::kBlake2b256Bytes, "the payload hash");
  if (!payload_hash) return source_error(source, ErrorCode::corrupt, payload_hash.error().message);
  if (reader.remaining() != 0) {
    return source_error(source, ErrorCode::corrupt,
                        std::to_string(reader.remaining()) + " unexpected bytes in the header");
  }
  const std::uint64_t offset = payload_offset(header_bytes);
  const std::uint64_t expected_size = offset + layout->value_count() * sizeof(float);
  if (total_size != expected_size) {
    return source_error(source, ErrorCode::corrupt,
                        std::to_string(total_size) + " bytes, but its layout of " +
                            std::to_string(layout->value_count()) + " values needs exactly " +
                            std::to_string(expected_size) + (total_size < expected_size ? " (truncated)" : ""));
  }
  return Head{*version, std::move(layout).value(), std::move(payload_hash).value(), offset};
}

Result<Weights> finish(Head head, std::vector<float> values, std::string_view source) {
  const auto actual_hash = crypto::blake2b256(bytes_of(values));
  if (std::memcmp(actual_hash.data(), head.payload_hash.data(), actual_hash.size()) != 0) {
    return source_error(source, ErrorCode::corrupt, "payload checksum mismatch (the values were damaged)");
  }
  return Weights::from_values(std::move(head.layout), head.version, std::move(values));
}

}  // namespace

std::vector<std::uint8_t> encode_weights(const Weights& weights) {
  auto bytes = encode_head(weights);
  const auto payload = bytes_of(weights.values());
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

Result<Weights> decode_weights(std::span<const std::uint8_t> bytes, std::string_view source) {
  auto prefix = read_prefix(bytes.first(std::min(bytes.size(), kPrefixBytes)), bytes.size(), source);
  if (!prefix) return prefix.error();
  auto head = read_head(bytes.first(kPrefixBytes + prefix->header_bytes + crypto::kBlake2b256Bytes), *prefix,
                        bytes.size(), source);
  if (!head) return head.error();
  std::vector<float> values(head->layout.value_count());
  std::memcpy(values.data(), bytes.data() + head->payload_offset, values.size() * sizeof(float));
  return finish(std::move(head).value(), std::move(values), source);
}

Status write_weights_file(const std::filesystem::path& path, const Weights& weights, base::Env& env) {
  // Head and payload are written separately so the model is not copied.
  auto writer = base::DurableFileWriter::create(path, 0644, env);
  if (!writer) return writer.error();
  if (auto status = writer->write(encode_head(weights)); !status) return status;
  if (auto status = writer->write(bytes_of(weights.values())); !status) return status;
  return writer->commit();
}

// Reads the head first, then the payload straight into the values: a model
// is never held twice in memory.
Result<Weights> read_weights_file(const std::filesystem::path& path) {
  const auto source = file_source(path);
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) {
    std::error_code error;
    const bool exists = std::filesystem::exists(path, error);
    return source_error(source, exists ? ErrorCode::io : ErrorCode::not_found,
                        exists ? "cannot be opened" : "does not exist");
  }
  const auto file_size = static_cast<std::uint64_t>(file.tellg());
  file.seekg(0);
  std::array<std::uint8_t, kPrefixBytes> prefix{};
  const auto prefix_size = static_cast<std::size_t>(std::min<std::uint64_t>(file_size, kPrefixBytes));
  if (!file.read(reinterpret_cast<char*>(prefix.data()), static_cast<std::streamsize>(prefix_size))) {
    return source_error(source, ErrorCode::io, "read of the header failed");
  }
  auto parsed_prefix = read_prefix(std::span(prefix).first(prefix_size), file_size, source);
  if (!parsed_prefix) return parsed_prefix.error();
  std::vector<std::uint8_t> head(kPrefixBytes + parsed_prefix->header_bytes + crypto::kBlake2b256Bytes);
  std::copy(prefix.begin(), prefix.end(), head.begin());
  if (!file.read(reinterpret_cast<char*>(head.data() + kPrefixBytes),
                 static_cast<std::streamsize>(head.size() - kPrefixBytes))) {
    return source_error(source, ErrorCode::io, "read of the header failed");
  }
  auto parsed = read_head(head, *parsed_prefix, file_size, source);
  if (!parsed) return parsed.error();
  std::vector<float> values(parsed->layout.value_count());
  file.seekg(static_cast<std::streamoff>(parsed->payload_offset));
  if (!file.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)))) {
    return source_error(source, ErrorCode::io, "read of the payload failed");
  }
  return finish(std::move(parsed).value(), std::move(values), source);
}

}  // namespace shoal::weights
