// The lossless delta codec: a release ships a new model version as its
// difference from an older one, bit-identical once applied.
//
// Float-aware, per tensor. A weight that moved a little between versions
// keeps its sign, its exponent and the top of its mantissa, so the XOR of
// the two float32 bit patterns is zero in its high bytes. The codec tries
// these transforms of each tensor and keeps the one that compresses best:
//   xor      target bits XOR base bits
//   diff     target bits minus base bits as integers, zigzag-coded, so a
//            small step either way is a small number
//   full     the target's own bits (a tensor that changed wholesale)
//   sorted   diff, with the words of a matrix (rank >= 2, >= 16384
//            values) sorted by their predicted size: a row hint plus a
//            column hint minus the base weight's exponent. The hints (i16,
//            one per row and per column) come before the frame.
//   quantized  for a lossy release (below): the integer q of
//            target = base + q * step, zigzag-coded, after the step (f32)
// Each transform's 32-bit words are split into four byte planes (every
// word's lowest byte, then the next, ...), which puts the near-constant high
// bytes together, and the planes are compressed with zstd.
//
// Lossy releases: quantize_towards() moves every weight of a new version
// to the nearest point base + q * step (step = 2 × the error bound), by
// the same float arithmetic apply_delta uses, so the quantised version is
// what every device rebuilds bit for bit. It is that version which is
// released, hashed and signed; its delta from the base is the small
// integers q. Buffers (running statistics, counters) are kept exact. The
// codec itself stays lossless.
//
// A delta names the layout, the base's version and BLAKE2b-256 of its
// values, and the target's. Applying it to any other base, or applying a
// corrupt or truncated delta, is an error naming what did not match, and
// the rebuilt values are checked against the target's hash before they are
// returned: nothing unverified comes out.
//
//   offset 0   "SHOALDLT"            magic, 8 bytes
//          8   format version        u32 LE (1)
//         12   layout hash           32 bytes
//         44   base version          u64 LE, then base values BLAKE2b-256
//         84   target version        u64 LE, then target values BLAKE2b-256
//        124   tensor count          u32 LE, then per tensor in layout order:
//                                    transform u8 (1 xor, 2 diff, 3 full,
//                                    4 quantized, 5 sorted), entry length
//                                    u64 LE, [quantized: step f32 LE]
//                                    [sorted: rows u32, cols u32, row hints
//                                    i16 each, column hints i16 each], the
//                                    zstd frame
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/hash.h"
#include "shoal/weights/weights.h"

namespace shoal::updater {

inline constexpr std::uint32_t kDeltaFormatVersion = 1;

enum class DeltaTransform : std::uint8_t { xor_bits = 1, diff_bits = 2, full = 3, quantized = 4, sorted_diff = 5 };

std::string_view transform_name(DeltaTransform transform);

// What a delta says about itself, readable without a base.
struct DeltaInfo {
  weights::LayoutHash layout_hash{};
  std::uint64_t base_version = 0;
  crypto::Blake2b256Digest base_hash{};
  std::uint64_t target_version = 0;
  crypto::Blake2b256Digest target_hash{};
  std::vector<DeltaTransform> transforms;  // per tensor
};

// BLAKE2b-256 of a version's values (the float32 bytes, little-endian): the
// identity of a base or target inside a delta.
crypto::Blake2b256Digest values_hash(const weights::Weights& weights);

// The delta from `base` to `target`, which must share a layout. `level` is
// zstd's (1 fast .. 19 small; 19 for releases). With `quantization_step`,
// tensors that quantize_towards() made from this base are coded as their q.
Result<std::vector<std::uint8_t>> encode_delta(const weights::Weights& base, const weights::Weights& target,
                                               int level = 19, std::optional<float> quantization_step = {});

// The lossy version of `target` against `base` (see above); its version is
// the target's. REQUIRES: error_bound > 0. A tensor whose change is too
// large for 24-bit steps is kept exact.
struct QuantizedVersion {
  weights::Weights weights;
  float step = 0;
  float max_error = 0;  // the largest |quantized - target| over all weights
};
Result<QuantizedVersion> quantize_towards(const weights::Weights& base, const weights::Weights& target,
                                          float error_bound);

// Reads a delta's header; `source` names it in errors.
Result<DeltaInfo> read_delta_info(std::span<const std::uint8_t> delta, std::string_view source);

// Rebuilds the target from `base`; checks base and target hashes.
Result<weights::Weights> apply_delta(const weights::Weights& base, std::span<const std::uint8_t> delta,
                                     std::string_view source);

}  // namespace shoal::updater
