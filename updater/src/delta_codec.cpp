#include "shoal/updater/delta_codec.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <future>
#include <memory>

#include "shoal/base/byte_io.h"
#include "shoal/crypto/encoding.h"

namespace shoal::updater {
namespace {

constexpr char kMagic[8] = {'S', 'H', 'O', 'A', 'L', 'D', 'L', 'T'};

std::vector<std::uint32_t> bits_of(std::span<const float> values) {
  std::vector<std::uint32_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), values.size_bytes());
  return bits;
}

std::uint32_t zigzag(std::uint32_t difference) {
  const auto value = static_cast<std::int32_t>(difference);
  return (static_cast<std::uint32_t>(value) << 1) ^ static_cast<std::uint32_t>(value >> 31);
}

std::uint32_t unzigzag(std::uint32_t coded) { return (coded >> 1) ^ (0u - (coded & 1u)); }

// The one formula of a quantised weight; encoder, publisher and device all
// use it (and this file is built without FMA contraction), so they agree bit for bit.
float dequantize(float base, std::int32_t q, float step) { return base + static_cast<float>(q) * step; }

// |q| stays below 2^24, where every integer is exact as a float.
constexpr std::int64_t kMaxQuantizedStep = (1 << 24) - 1;

// q per weight if `target` is base + q * step exactly, else nullopt.
std::optional<std::vector<std::uint32_t>> quantized_words(std::span<const float> base, std::span<const float> target,
                                                          float step) {
  std::vector<std::uint32_t> words(target.size());
  for (std::size_t i = 0; i < target.size(); ++i) {
    const float steps = std::nearbyint((target[i] - base[i]) / step);
    if (!(std::fabs(steps) <= kMaxQuantizedStep)) return std::nullopt;
    const auto q = static_cast<std::int32_t>(steps);
    const float rebuilt = dequantize(base[i], q, step);
    if (std::memcmp(&rebuilt, &target[i], sizeof rebuilt) != 0) return std::nullopt;
    words[i] = zigzag(static_cast<std::uint32_t>(q));
  }
  return words;
}

// The transform of one tensor's target bits against its base bits.
std::vector<std::uint32_t> forward(DeltaTransform transform, std::span<const std::uint32_t> base,
                                   std::span<const std::uint32_t> target) {
  std::vector<std::uint32_t> words(target.begin(), target.end());
  if (transform == DeltaTransform::xor_bits) {
    for (std::size_t i = 0; i < words.size(); ++i) words[i] ^= base[i];
  } else if (transform == DeltaTransform::diff_bits) {
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = zigzag(target[i] - base[i]);
  }
  return words;
}

// Byte plane p holds byte p of every word, so the high bytes sit together.
std::vector<std::uint8_t> to_planes(std::span<const std::uint32_t> words) {
  const std::size_t n = words.size();
  std::vector<std::uint8_t> planes(n * 4);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t p = 0; p < 4; ++p) planes[p * n + i] = static_cast<std::uint8_t>(words[i] >> (8 * p));
  }
  return planes;
}

void from_planes(std::span<const std::uint8_t> planes, std::span<std::uint32_t> words) {
  const std::size_t n = words.size();
  for (std::size_t i = 0; i < n; ++i) {
    words[i] = static_cast<std::uint32_t>(planes[i]) | static_cast<std::uint32_t>(planes[n + i]) << 8 |
               static_cast<std::uint32_t>(planes[2 * n + i]) << 16 | static_cast<std::uint32_t>(planes[3 * n + i]) << 24;
  }
}

// The sorted transform. A weight's change in a trained layer has a size
// that follows its row (output unit) and column (input): a gradient step
// is a sum of outer products. The bit length of the zigzag difference is
// predicted as row hint + column hint - the base weight's exponent (the
// exponent sets the size of one step of the bit pattern), and the words are
// sorted by that prediction before the byte planes are cut, so each zstd
// block sees words of one size. The decoder knows the hints (stored, two
// bytes per row and per column) and the base, so it sorts the same way.
struct SortHints {
  std::uint32_t rows = 0, cols = 0;
  std::vector<std::int16_t> row, col;
};

constexpr int kSortBuckets = 129;  // predictions clamped to [-64, 64]
constexpr std::size_t kMinSortedValues = 16384;

int bit_length(std::uint32_t word) { return word == 0 ? 0 : 32 - std::countl_zero(word); }
int exponent_of(std::uint32_t bits) { return static_cast<int>((bits >> 23) & 0xff); }

// The encoder's hints: medians of (bit length + base exponent) per row, then
// of what is left per column.
SortHints make_hints(std::span<const std::uint32_t> words, std::span<const std::uint32_t> base_bits,
                     std::uint32_t rows) {
  SortHints hints{rows, static_cast<std::uint32_t>(words.size() / rows), {}, {}};
  std::vector<int> magnitude(words.size());
  for (std::size_t i = 0; i < words.size(); ++i) {
    const int exponent = exponent_of(base_bits[i]);
    magnitude[i] = words[i] == 0 ? exponent - 8 : bit_length(words[i]) + exponent;
  }
  auto median = [](std::vector<int>& values) {
    auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
    std::nth_element(values.begin(), middle, values.end());
    return static_cast<std::int16_t>(*middle);
  };
  std::vector<int> line(hints.cols);
  for (std::uint32_t r = 0; r < rows; ++r) {
    std::copy_n(magnitude.begin() + static_cast<std::ptrdiff_t>(r) * hints.cols, hints.cols, line.begin());
    hints.row.push_back(median(line));
  }
  line.resize(rows);
  for (std::uint32_t c = 0; c < hints.cols; ++c) {
    for (std::uint32_t r = 0; r < rows; ++r) line[r] = magnitude[std::size_t{r} * hints.cols + c] - hints.row[r];
    hints.col.push_back(median(line));
  }
  return hints;
}

// Each word's bucket: its predicted size, clamped, from 0. Row by row, so no division.
std::vector<std::uint8_t> buckets_of(const SortHints& hints, std::span<const float> base) {
  std::vector<std::uint8_t> buckets(base.size());
  for (std::size_t r = 0; r < hints.rows; ++r) {
    const float* row_values = base.data() + r * hints.cols;
    std::uint8_t* out = buckets.data() + r * hints.cols;
    const int row = hints.row[r];
    for (std::size_t c = 0; c < hints.cols; ++c) {
      const int predicted = row + hints.col[c] - exponent_of(std::bit_cast<std::uint32_t>(row_values[c]));
      out[c] = static_cast<std::uint8_t>(std::clamp(predicted, -64, 64) + 64);
    }
  }
  return buckets;
}

// Where each bucket's words start in the sorted order.
std::array<std::size_t, kSortBuckets> bucket_starts(std::span<const std::uint8_t> buckets) {
  std::array<std::size_t, kSortBuckets> starts{};
  for (auto bucket : buckets) ++starts[bucket];
  std::size_t total = 0;
  for (auto& start : starts) total += std::exchange(start, total);
  return starts;
}

std::vector<std::uint32_t> sort_words(const SortHints& hints, std::span<const std::uint32_t> words,
                                      std::span<const float> base) {
  const auto buckets = buckets_of(hints, base);
  auto next = bucket_starts(buckets);
  std::vector<std::uint32_t> sorted(words.size());
  for (std::size_t i = 0; i < words.size(); ++i) sorted[next[buckets[i]]++] = words[i];
  return sorted;
}

Result<std::vector<std::uint8_t>> compress(std::span<const std::uint8_t> bytes, int level) {
  std::vector<std::uint8_t> out(ZSTD_compressBound(bytes.size()));
  const std::size_t size = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), level);
  if (ZSTD_isError(size)) return make_error(ErrorCode::invalid_argument, std::string("zstd: ") + ZSTD_getErrorName(size));
  out.resize(size);
  return out;
}

Error corrupt(std::string_view source, const std::string& what) {
  return make_error(ErrorCode::corrupt, std::string(source) + ": " + what);
}

std::string short_hex(const crypto::Blake2b256Digest& digest) {
  return crypto::to_hex(std::span(digest).first(8));
}

}  // namespace

std::string_view transform_name(DeltaTransform transform) {
  switch (transform) {
    case DeltaTransform::xor_bits: return "xor";
    case DeltaTransform::diff_bits: return "diff";
    case DeltaTransform::full: return "full";
    case DeltaTransform::quantized: return "quantized";
    case DeltaTransform::sorted_diff: return "sorted diff";
  }
  return "unknown";
}

crypto::Blake2b256Digest values_hash(const weights::Weights& weights) {
  const auto values = weights.values();
  return crypto::blake2b256({reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()});
}

Result<std::vector<std::uint8_t>> encode_delta(const weights::Weights& base, const weights::Weights& target,
                                               int level, std::optional<float> quantization_step) {
  if (base.layout() != target.layout()) return weights::layout_mismatch("delta target", base.layout(), target.layout());
  std::vector<std::uint8_t> out(std::begin(kMagic), std::end(kMagic));
  base::append_le(out, kDeltaFormatVersion);
  base::append_bytes(out, base.layout().hash());
  base::append_le(out, base.version());
  base::append_bytes(out, values_hash(base));
  base::append_le(out, target.version());
  base::append_bytes(out, values_hash(target));
  const auto& tensors = base.layout().tensors();
  base::append_le(out, static_cast<std::uint32_t>(tensors.size()));
  // Each transform is tried at a fast zstd level; the smallest is then compressed at `level`.
  const int trial_level = std::min(level, 3);
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const auto base_bits = bits_of(base.tensor(t));
    const auto target_bits = bits_of(target.tensor(t));
    struct Candidate {
      DeltaTransform transform;
      std::vector<std::uint8_t> prefix;  // what the entry holds before the zstd frame
      std::vector<std::uint32_t> words;
    };
    std::optional<Candidate> best;
    std::size_t best_size = 0;
    auto consider = [&](Candidate candidate) -> Status {
      auto frame = compress(to_planes(candidate.words), trial_level);
      if (!frame) return frame.error();
      const std::size_t size = candidate.prefix.size() + frame->size();
      if (!best || size < best_size) {
        best = std::move(candidate);
        best_size = size;
      }
      return ok_status();
    };
    for (const auto transform : {DeltaTransform::full, DeltaTransform::xor_bits, DeltaTransform::diff_bits}) {
      if (auto status = consider({transform, {}, forward(transform, base_bits, target_bits)}); !status) {
        return status.error();
      }
    }
    const auto& shape = tensors[t].shape;
    if (base_bits.size() >= kMinSortedValues && shape.size() >= 2 && shape[0] >= 2 &&
        static_cast<std::size_t>(shape[0]) < base_bits.size() / 2) {
      const auto diff = forward(DeltaTransform::diff_bits, base_bits, target_bits);
      const auto hints = make_hints(diff, base_bits, static_cast<std::uint32_t>(shape[0]));
      std::vector<std::uint8_t> prefix;
      base::append_le(prefix, hints.rows);
      base::append_le(prefix, hints.cols);
      for (auto hint : hints.row) base::append_le(prefix, static_cast<std::uint16_t>(hint));
      for (auto hint : hints.col) base::append_le(prefix, static_cast<std::uint16_t>(hint));
      if (auto status = consider({DeltaTransform::sorted_diff, std::move(prefix),
                                  sort_words(hints, diff, base.tensor(t))});
          !status) {
        return status.error();
      }
    }
    if (quantization_step) {
      if (auto words = quantized_words(base.tensor(t), target.tensor(t), *quantization_step)) {
        std::vector<std::uint8_t> prefix;
        base::append_le(prefix, std::bit_cast<std::uint32_t>(*quantization_step));
        if (auto status = consider({DeltaTransform::quantized, std::move(prefix), std::move(*words)}); !status) {
          return status.error();
        }
      }
    }
    auto frame = compress(to_planes(best->words), level);
    if (!frame) return frame.error();
    base::append_u8(out, static_cast<std::uint8_t>(best->transform));
    base::append_le(out, static_cast<std::uint64_t>(best->prefix.size() + frame->size()));
    base::append_bytes(out, best->prefix);
    base::append_bytes(out, *frame);
  }
  return out;
}

namespace {

// Reads a sorted tensor's hints, which must describe a tensor of `values` values.
Status read_hints(base::ByteReader& reader, std::size_t values, SortHints& hints) {
  auto rows = reader.read_le<std::uint32_t>("the rows");
  auto cols = reader.read_le<std::uint32_t>("the columns");
  if (!rows || !cols) return (rows ? cols.error() : rows.error());
  if (std::uint64_t{*rows} * *cols != values || *rows == 0) {
    return make_error(ErrorCode::corrupt, std::to_string(*rows) + " x " + std::to_string(*cols) + " hints for " +
                                              std::to_string(values) + " values");
  }
  hints.rows = *rows;
  hints.cols = *cols;
  for (auto* line : {&hints.row, &hints.col}) {
    const std::uint32_t count = line == &hints.row ? *rows : *cols;
    line->resize(count);
    for (auto& hint : *line) {
      auto value = reader.read_le<std::uint16_t>("a hint");
      if (!value) return value.error();
      hint = static_cast<std::int16_t>(*value);
    }
  }
  return ok_status();
}

// Reads the header; leaves `reader` at the first tensor.
Result<DeltaInfo> read_header(base::ByteReader& reader, std::string_view source) {
  auto magic = reader.read_bytes(sizeof kMagic, "the magic");
  if (!magic) return corrupt(source, magic.error().message);
  if (std::memcmp(magic->data(), kMagic, sizeof kMagic) != 0) return corrupt(source, "not a shoal delta (bad magic)");
  auto version = reader.read_le<std::uint32_t>("the format version");
  if (!version) return corrupt(source, version.error().message);
  if (*version != kDeltaFormatVersion) {
    return make_error(ErrorCode::unsupported, std::string(source) + ": delta format version " +
                                                  std::to_string(*version) + ", this build reads " +
                                                  std::to_string(kDeltaFormatVersion));
  }
  DeltaInfo info;
  auto read_digest = [&](crypto::Blake2b256Digest& digest, const char* what) -> Status {
    auto bytes = reader.read_bytes(digest.size(), what);
    if (!bytes) return corrupt(source, bytes.error().message);
    std::memcpy(digest.data(), bytes->data(), digest.size());
    return ok_status();
  };
  auto read_u64 = [&](std::uint64_t& value, const char* what) -> Status {
    auto read = reader.read_le<std::uint64_t>(what);
    if (!read) return corrupt(source, read.error().message);
    value = *read;
    return ok_status();
  };
  if (auto s = read_digest(info.layout_hash, "the layout hash"); !s) return s.error();
  if (auto s = read_u64(info.base_version, "the base version"); !s) return s.error();
  if (auto s = read_digest(info.base_hash, "the base hash"); !s) return s.error();
  if (auto s = read_u64(info.target_version, "the target version"); !s) return s.error();
  if (auto s = read_digest(info.target_hash, "the target hash"); !s) return s.error();
  auto count = reader.read_le<std::uint32_t>("the tensor count");
  if (!count) return corrupt(source, count.error().message);
  // Each tensor's entry takes at least its code and length: a count the
  // remaining bytes cannot hold is refused before anything is sized by it.
  constexpr std::size_t kMinEntryBytes = 1 + 8;
  if (*count > reader.remaining() / kMinEntryBytes) {
    return corrupt(source, "claims " + std::to_string(*count) + " tensors but has only " +
                               std::to_string(reader.remaining()) + " bytes left for them");
  }
  info.transforms.resize(*count);
  return info;
}

struct TensorEntry {
  std::uint8_t transform;
  std::span<const std::uint8_t> frame;
};

// One tensor's transform code and zstd frame; `name` is for errors.
Result<TensorEntry> read_tensor_entry(base::ByteReader& reader, std::string_view source, const std::string& name) {
  auto code = reader.read_le<std::uint8_t>("a tensor's transform");
  auto length = reader.read_le<std::uint64_t>("a tensor's length");
  if (!code || !length) return corrupt(source, (code ? length.error() : code.error()).message);
  auto frame = reader.read_bytes(*length, "a tensor's data");
  if (!frame) return corrupt(source, name + frame.error().message);
  return TensorEntry{*code, *frame};
}

// Rebuilds one tensor into `out` from its entry and its base values.
Status decode_tensor(const TensorEntry& entry, std::span<const float> base, std::span<float> out) {
  const auto transform = static_cast<DeltaTransform>(entry.transform);
  if (transform != DeltaTransform::xor_bits && transform != DeltaTransform::diff_bits &&
      transform != DeltaTransform::full && transform != DeltaTransform::quantized &&
      transform != DeltaTransform::sorted_diff) {
    return make_error(ErrorCode::corrupt, "unknown transform " + std::to_string(entry.transform));
  }
  const std::size_t n = base.size();
  base::ByteReader prefix(entry.frame.data(), entry.frame.size(), "the entry");
  float step = 0;
  SortHints hints;
  if (transform == DeltaTransform::quantized) {
    auto step_bits = prefix.read_le<std::uint32_t>("a quantized tensor's step");
    if (!step_bits) return step_bits.error();
    step = std::bit_cast<float>(*step_bits);
    if (!std::isfinite(step) || step <= 0) return make_error(ErrorCode::corrupt, "step is not a positive number");
  } else if (transform == DeltaTransform::sorted_diff) {
    if (auto status = read_hints(prefix, n, hints); !status) return status;
  }
  const auto frame = entry.frame.subspan(entry.frame.size() - prefix.remaining());
  // The frame must hold exactly the tensor's bytes: a corrupt size cannot make us allocate.
  if (ZSTD_getFrameContentSize(frame.data(), frame.size()) != n * 4) {
    return make_error(ErrorCode::corrupt, "its data is not " + std::to_string(n * 4) + " bytes");
  }
  // Uninitialised buffers: every byte is written before it is read.
  std::unique_ptr<std::uint8_t[]> planes(new std::uint8_t[n * 4]);
  const std::size_t size = ZSTD_decompress(planes.get(), n * 4, frame.data(), frame.size());
  if (ZSTD_isError(size) || size != n * 4) {
    return make_error(ErrorCode::corrupt, ZSTD_isError(size) ? std::string(ZSTD_getErrorName(size)) : "short data");
  }
  std::unique_ptr<std::uint32_t[]> words(new std::uint32_t[n]);
  from_planes({planes.get(), n * 4}, {words.get(), n});
  auto bits = [&](std::size_t i) { return std::bit_cast<std::uint32_t>(base[i]); };
  switch (transform) {
    case DeltaTransform::full:
      for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(words[i]);
      break;
    case DeltaTransform::xor_bits:
      for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(words[i] ^ bits(i));
      break;
    case DeltaTransform::diff_bits:
      for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(unzigzag(words[i]) + bits(i));
      break;
    case DeltaTransform::sorted_diff: {
      // Each word is taken from its bucket's run in the sorted order.
      const auto buckets = buckets_of(hints, base);
      auto next = bucket_starts(buckets);
      for (std::size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(unzigzag(words[next[buckets[i]]++]) + bits(i));
      break;
    }
    case DeltaTransform::quantized:
      for (std::size_t i = 0; i < n; ++i) out[i] = dequantize(base[i], static_cast<std::int32_t>(unzigzag(words[i])), step);
      break;
  }
  return ok_status();
}

}  // namespace

Result<DeltaInfo> read_delta_info(std::span<const std::uint8_t> delta, std::string_view source) {
  base::ByteReader reader(delta.data(), delta.size(), std::string(source));
  auto info = read_header(reader, source);
  if (!info) return info.error();
  for (auto& transform : info->transforms) {
    auto entry = read_tensor_entry(reader, source, "");
    if (!entry) return entry.error();
    transform = static_cast<DeltaTransform>(entry->transform);
  }
  return info;
}

Result<weights::Weights> apply_delta(const weights::Weights& base, std::span<const std::uint8_t> delta,
                                     std::string_view source) {
  base::ByteReader reader(delta.data(), delta.size(), std::string(source));
  auto info = read_header(reader, source);
  if (!info) return info.error();
  const auto& layout = base.layout();
  if (info->layout_hash != layout.hash()) {
    return make_error(ErrorCode::invalid_argument, std::string(source) + ": the delta is for layout " +
                                                       short_hex(info->layout_hash) + ", the base has " +
                                                       layout.short_hash());
  }
  if (info->base_version != base.version()) {
    return make_error(ErrorCode::invalid_argument, std::string(source) + ": the delta applies to version " +
                                                       std::to_string(info->base_version) + ", the base is version " +
                                                       std::to_string(base.version()));
  }
  if (info->transforms.size() != layout.tensors().size()) {
    return corrupt(source, std::to_string(info->transforms.size()) + " tensors, the layout has " +
                               std::to_string(layout.tensors().size()));
  }
  // The base's hash is checked on a second thread while the tensors are
  // rebuilt (hashing is a third of the work); a wrong base is reported
  // before anything the decoding found.
  auto base_hash = std::async(std::launch::async, [&base] { return values_hash(base); });
  std::vector<float> values(base.values().size());
  Status rebuilt = ok_status();
  for (std::size_t t = 0; t < layout.tensors().size() && rebuilt; ++t) {
    const auto& name = layout.tensors()[t].name;
    auto entry = read_tensor_entry(reader, source, "tensor " + name + ": ");
    if (!entry) {
      rebuilt = entry.error();
      break;
    }
    const auto out = std::span(values).subspan(layout.offset(t), base.tensor(t).size());
    if (auto status = decode_tensor(*entry, base.tensor(t), out); !status) {
      rebuilt = corrupt(source, "tensor " + name + ": " + status.error().message);
    }
  }
  if (const auto actual = base_hash.get(); actual != info->base_hash) {
    return make_error(ErrorCode::invalid_argument,
                      std::string(source) + ": the delta applies to version " + std::to_string(info->base_version) +
                          " (values " + short_hex(info->base_hash) + "), the base is version " +
                          std::to_string(base.version()) + " (values " + short_hex(actual) + ")");
  }
  if (!rebuilt) return rebuilt.error();
  if (reader.remaining() != 0) {
    return corrupt(source, std::to_string(reader.remaining()) + " bytes after the last tensor");
  }
  auto target = weights::Weights::from_values(layout, info->target_version, std::move(values));
  if (!target) return target.error();
  if (values_hash(*target) != info->target_hash) {
    return make_error(ErrorCode::verification, std::string(source) + ": the rebuilt values do not match the target's hash " +
                                                   short_hex(info->target_hash) + " (a damaged delta)");
  }
  return target;
}

Result<QuantizedVersion> quantize_towards(const weights::Weights& base, const weights::Weights& target,
                                          float error_bound) {
  if (base.layout() != target.layout()) return weights::layout_mismatch("lossy target", base.layout(), target.layout());
  if (!(error_bound > 0) || !std::isfinite(error_bound)) {
    return make_error(ErrorCode::invalid_argument, "the lossy error bound must be a positive number");
  }
  QuantizedVersion out{weights::Weights(target.layout(), target.version()), 2 * error_bound, 0};
  for (std::size_t t = 0; t < base.layout().tensors().size(); ++t) {
    const auto b = base.tensor(t), x = target.tensor(t);
    auto y = out.weights.values().subspan(base.layout().offset(t), x.size());
    // Buffers ship exact: a running variance moved by the bound could turn
    // negative, and a counter must stay whole.
    bool representable = base.layout().tensors()[t].kind == weights::TensorKind::parameter;
    for (std::size_t i = 0; i < x.size() && representable; ++i) {
      const float steps = std::nearbyint((x[i] - b[i]) / out.step);
      representable = std::fabs(steps) <= kMaxQuantizedStep;
      if (representable) y[i] = dequantize(b[i], static_cast<std::int32_t>(steps), out.step);
    }
    if (!representable) std::copy(x.begin(), x.end(), y.begin());
    for (std::size_t i = 0; i < x.size(); ++i) out.max_error = std::max(out.max_error, std::fabs(y[i] - x[i]));
  }
  return out;
}

}  // namespace shoal::updater
