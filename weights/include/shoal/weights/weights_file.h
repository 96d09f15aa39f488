// The weights file: how a model version is stored on disk and shipped.
//
//   offset 0   "SHOALWTS"                 magic, 8 bytes
//          8   format version             u32 LE (1)
//         12   header length H            u32 LE
//         16   header, H bytes:           model version u64 LE,
//                                         tensor count u32 LE, then per tensor:
//                                         name length u16 LE, name, dtype u8,
//                                         rank u8, dims i64 LE each,
//                                         payload BLAKE2b-256 (32 bytes)
//       16+H   header BLAKE2b-256         over bytes [0, 16+H)
//       48+H   zero padding to a multiple of 64
//          P   payload: parameter_count float32 LE values, then end of file
//
// Files are written atomically. Reading checks the magic, version, both
// hashes, the layout and the exact length, and reports the first problem
// with the file name; nothing is returned from a damaged file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "shoal/crypto/result.h"
#include "shoal/weights/weights.h"

namespace shoal::weights {

inline constexpr std::uint32_t kWeightsFormatVersion = 1;

Status write_weights_file(const std::filesystem::path& path, const Weights& weights);
Result<Weights> read_weights_file(const std::filesystem::path& path);

// The same format in memory, for sending a model in a message. Errors start
// with `source` (e.g. "train task payload").
std::vector<std::uint8_t> encode_weights(const Weights& weights);
Result<Weights> decode_weights(std::span<const std::uint8_t> bytes, std::string_view source);

}  // namespace shoal::weights
