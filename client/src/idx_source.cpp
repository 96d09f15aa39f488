#include <zlib.h>

#include <cstring>

#include "shoal/client/dataset.h"

namespace shoal::client {
namespace {

constexpr std::size_t kMaxIdxBytes = std::size_t{2} << 30;
constexpr std::uint8_t kUnsignedByte = 0x08;

Error idx_error(const std::filesystem::path& path, std::size_t offset, const std::string& what) {
  return make_error(ErrorCode::corrupt, "IDX file '" + path.string() + "' at byte " + std::to_string(offset) + ": " + what);
}

// Reads the whole file, inflating it if it is gzip (zlib reads plain files as they are).
Result<std::vector<std::uint8_t>> read_maybe_gzip(const std::filesystem::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return make_error(std::filesystem::exists(path) ? ErrorCode::io : ErrorCode::not_found,
                      "IDX file '" + path.string() + "' cannot be opened");
  }
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  for (;;) {
    const int n = gzread(file, chunk, sizeof chunk);
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      return make_error(ErrorCode::corrupt, "IDX file '" + path.string() + "': decompression failed after " +
                                                std::to_string(bytes.size()) + " bytes: " + message);
    }
    if (n == 0) break;
    if (bytes.size() + static_cast<std::size_t>(n) > kMaxIdxBytes) {
      gzclose(file);
      return make_error(ErrorCode::invalid_argument, "IDX file '" + path.string() + "' is larger than 2 GiB");
    }
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  // A gzip stream cut short reads as a clean end; gzclose reports it.
  if (const int status = gzclose(file); status != Z_OK) {
    return make_error(ErrorCode::corrupt, "IDX file '" + path.string() + "' is a truncated or damaged gzip stream");
  }
  return bytes;
}

// Parses the IDX header of unsigned-byte data with `expected_rank` dimensions.
Result<std::vector<std::uint32_t>> parse_header(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes,
                                                std::uint8_t expected_rank) {
  if (bytes.size() < 4) return idx_error(path, bytes.size(), "file ends inside the 4-byte magic number");
  if (bytes[0] != 0 || bytes[1] != 0) return idx_error(path, 0, "not an IDX file (magic must start with two zero bytes)");
  if (bytes[2] != kUnsignedByte) {
    return idx_error(path, 2, "element type " + std::to_string(bytes[2]) + " is not unsigned byte (8)");
  }
  if (bytes[3] != expected_rank) {
    return idx_error(path, 3, std::to_string(bytes[3]) + " dimensions, expected " + std::to_string(expected_rank));
  }
  const std::size_t header = 4 + 4 * std::size_t{expected_rank};
  if (bytes.size() < header) return idx_error(path, bytes.size(), "file ends inside the dimension sizes");
  std::vector<std::uint32_t> dims(expected_rank);
  std::uint64_t elements = 1;
  for (std::size_t d = 0; d < expected_rank; ++d) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * d;
    dims[d] = std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];  // big-endian
    elements *= dims[d];
  }
  if (bytes.size() - header != elements) {
    return idx_error(path, bytes.size(),
                     "holds " + std::to_string(bytes.size() - header) + " data bytes, its dimensions need " +
                         std::to_string(elements) + (bytes.size() - header < elements ? " (truncated)" : ""));
  }
  return dims;
}

}  // namespace

Result<Dataset> load_idx(const std::filesystem::path& images, const std::filesystem::path& labels) {
  auto image_bytes = read_maybe_gzip(images);
  if (!image_bytes) return image_bytes.error();
  auto image_dims = parse_header(images, *image_bytes, 3);
  if (!image_dims) return image_dims.error();
  auto label_bytes = read_maybe_gzip(labels);
  if (!label_bytes) return label_bytes.error();
  auto label_dims = parse_header(labels, *label_bytes, 1);
  if (!label_dims) return label_dims.error();
  if ((*image_dims)[0] != (*label_dims)[0]) {
    return make_error(ErrorCode::corrupt, "IDX files '" + images.string() + "' and '" + labels.string() + "' hold " +
                                              std::to_string((*image_dims)[0]) + " images but " +
                                              std::to_string((*label_dims)[0]) + " labels");
  }
  Dataset data;
  data.sample_shape = {1, (*image_dims)[1], (*image_dims)[2]};
  const std::uint8_t* pixels = image_bytes->data() + 16;
  data.features.resize(image_bytes->size() - 16);
  for (std::size_t i = 0; i < data.features.size(); ++i) data.features[i] = pixels[i] / 255.0f;
  data.labels.assign(label_bytes->begin() + 8, label_bytes->end());
  return data;
}

}  // namespace shoal::client
