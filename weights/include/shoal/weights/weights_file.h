// The weights file: how a model version is stored on disk and shipped.
//
//   offset 0   "SHOALWTS"                 magic, 8 bytes
//          8   format version             u32 LE (2)
//         12   header length H            u32 LE
//         16   header, H bytes:           model version u64 LE,
//                                         tensor count u32 LE, then per tensor:
//                                         name length u16 LE, name, kind u8
//                                         (0 parameter, 1 buffer), dtype u8,
//                                         rank u8, dims i64 LE each,
//                                         payload BLAKE2b-256 (32 bytes)
//       16+H   header BLAKE2b-256         over bytes [0, 16+H)
//       48+H   zero padding to a multiple of 64
//          P   payload: value_count float32 LE values (parameters, then
//              buffers; an int64 buffer as exact float32 integers), then
//              end of file
//
// Format 1, written before buffers were stored, had no kind byte: it is
// still read, as a layout of parameters only. Loading one into a model that
// has buffers is refused by the layout check, with a message saying so.
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

#include "shoal/base/env.h"
#include "shoal/base/result.h"
#include "shoal/weights/weights.h"

namespace shoal::weights {

inline constexpr std::uint32_t kWeightsFormatVersion = 2;

// Written durably through `env`. Read back streamed from the file system, so
// that a model is never held twice in memory.
Status write_weights_file(const std::filesystem::path& path, const Weights& weights,
                          base::Env& env = base::Env::standard());
Result<Weights> read_weights_file(const std::filesystem::path& path);

// The same format in memory, for sending a model in a message. Errors start
// with `source` (e.g. "train task payload").
std::vector<std::uint8_t> encode_weights(const Weights& weights);
Result<Weights> decode_weights(std::span<const std::uint8_t> bytes, std::string_view source);

}  // namespace shoal::weights
