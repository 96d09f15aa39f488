#include "shoal/updater/delta_codec.h"

#include <zstd.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "shoal/crypto/byte_io.h"
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

void inverse(DeltaTransform transform, std::span<const std::uint32_t> base, std::span<std::uint32_t> words) {
  if (transform == DeltaTransform::xor_bits) {
    for (std::size_t i = 0; i < words.size(); ++i) words[i] ^= base[i];
  } else if (transform == DeltaTransform::diff_bits) {
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = unzigzag(words[i]) + base[i];
  }
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
  crypto::append_le(out, kDeltaFormatVersion);
  crypto::append_bytes(out, base.layout().hash());
  crypto::append_le(out, base.version());
  crypto::append_bytes(out, values_hash(base));
  crypto::append_le(out, target.version());
  crypto::append_bytes(out, values_hash(target));
  const auto& tensors = base.layout().tensors();
  crypto::append_le(out, static_cast<std::uint32_t>(tensors.size()));
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const auto base_bits = bits_of(base.tensor(t));
    const auto target_bits = bits_of(target.tensor(t));
    DeltaTransform best_transform = DeltaTransform::full;
    std::vector<std::uint8_t> best;
    for (const auto transform : {DeltaTransform::full, DeltaTransform::xor_bits, DeltaTransform::diff_bits}) {
      auto frame = compress(to_planes(forward(transform, base_bits, target_bits)), level);
      if (!frame) return frame.error();
      if (best.empty() || frame->size() < best.size()) {
        best = std::move(frame).value();
        best_transform = transform;
      }
    }
    if (quantization_step) {
      if (auto words = quantized_words(base.tensor(t), target.tensor(t), *quantization_step)) {
        auto frame = compress(to_planes(*words), level);
        if (!frame) return frame.error();
        if (frame->size() + sizeof(float) < best.size()) {
          best.clear();
          crypto::append_le(best, std::bit_cast<std::uint32_t>(*quantization_step));
          crypto::append_bytes(best, *frame);
          best_transform = DeltaTransform::quantized;
        }
      }
    }
    crypto::append_u8(out, static_cast<std::uint8_t>(best_transform));
    crypto::append_le(out, static_cast<std::uint64_t>(best.size()));
    crypto::append_bytes(out, best);
  }
  return out;
}

namespace {

// Reads the header; leaves `reader` at the first tensor.
Result<DeltaInfo> read_header(crypto::ByteReader& reader, std::string_view source) {
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
  info.transforms.resize(*count);
  return info;
}

struct TensorEntry {
  std::uint8_t transform;
  std::span<const std::uint8_t> frame;
};

// One tensor's transform code and zstd frame; `name` is for errors.
Result<TensorEntry> read_tensor_entry(crypto::ByteReader& reader, std::string_view source, const std::string& name) {
  auto code = reader.read_le<std::uint8_t>("a tensor's transform");
  auto length = reader.read_le<std::uint64_t>("a tensor's length");
  if (!code || !length) return corrupt(source, (code ? length.error() : code.error()).message);
  auto frame = reader.read_bytes(*length, "a tensor's data");
  if (!frame) return corrupt(source, name + frame.error().message);
  return TensorEntry{*code, *frame};
}

}  // namespace

Result<DeltaInfo> read_delta_info(std::span<const std::uint8_t> delta, std::string_view source) {
  crypto::ByteReader reader(delta.data(), delta.size(), std::string(source));
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
  crypto::ByteReader reader(delta.data(), delta.size(), std::string(source));
  auto info = read_header(reader, source);
  if (!info) return info.error();
  const auto& layout = base.layout();
  if (info->layout_hash != layout.hash()) {
    return make_error(ErrorCode::invalid_argument, std::string(source) + ": the delta is for layout " +
                                                       short_hex(info->layout_hash) + ", the base has " +
                                                       layout.short_hash());
  }
  if (info->base_version != base.version() || info->base_hash != values_hash(base)) {
    return make_error(ErrorCode::invalid_argument,
                      std::string(source) + ": the delta applies to version " + std::to_string(info->base_version) +
                          " (values " + short_hex(info->base_hash) + "), the base is version " +
                          std::to_string(base.version()) + " (values " + short_hex(values_hash(base)) + ")");
  }
  if (info->transforms.size() != layout.tensors().size()) {
    return corrupt(source, std::to_string(info->transforms.size()) + " tensors, the layout has " +
                               std::to_string(layout.tensors().size()));
  }
  std::vector<float> values(base.values().size());
  for (std::size_t t = 0; t < layout.tensors().size(); ++t) {
    const auto& name = layout.tensors()[t].name;
    auto entry = read_tensor_entry(reader, source, "tensor " + name + ": ");
    if (!entry) return entry.error();
    const auto transform = static_cast<DeltaTransform>(entry->transform);
    if (transform != DeltaTransform::xor_bits && transform != DeltaTransform::diff_bits &&
        transform != DeltaTransform::full && transform != DeltaTransform::quantized) {
      return corrupt(source, "tensor " + name + ": unknown transform " + std::to_string(entry->transform));
    }
    auto frame = entry->frame;
    float step = 0;
    if (transform == DeltaTransform::quantized) {
      crypto::ByteReader step_reader(frame.data(), frame.size(), std::string(source));
      auto step_bits = step_reader.read_le<std::uint32_t>("a quantized tensor's step");
      if (!step_bits) return corrupt(source, "tensor " + name + ": " + step_bits.error().message);
      step = std::bit_cast<float>(*step_bits);
      if (!std::isfinite(step) || step <= 0) return corrupt(source, "tensor " + name + ": step is not a positive number");
      frame = frame.subspan(sizeof(float));
    }
    const auto base_bits = bits_of(base.tensor(t));
    std::vector<std::uint8_t> planes(base_bits.size() * 4);
    // The frame must hold exactly the tensor's bytes: a corrupt size cannot make us allocate.
    if (ZSTD_getFrameContentSize(frame.data(), frame.size()) != planes.size()) {
      return corrupt(source, "tensor " + name + ": its data is not " + std::to_string(planes.size()) + " bytes");
    }
    const std::size_t size = ZSTD_decompress(planes.data(), planes.size(), frame.data(), frame.size());
    if (ZSTD_isError(size) || size != planes.size()) {
      return corrupt(source, "tensor " + name + ": " +
                                 (ZSTD_isError(size) ? std::string(ZSTD_getErrorName(size)) : "short data"));
    }
    std::vector<std::uint32_t> words(base_bits.size());
    from_planes(planes, words);
    if (transform == DeltaTransform::quantized) {
      const auto base_values = base.tensor(t);
      float* out = values.data() + layout.offset(t);
      for (std::size_t i = 0; i < words.size(); ++i) {
        out[i] = dequantize(base_values[i], static_cast<std::int32_t>(unzigzag(words[i])), step);
      }
      continue;
    }
    inverse(transform, base_bits, words);
    std::memcpy(values.data() + layout.offset(t), words.data(), words.size() * sizeof(std::uint32_t));
  }
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
    bool representable = true;
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
