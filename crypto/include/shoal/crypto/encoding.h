// Hex encoding of keys, digests and ids for key files, logs and command
// output. Decoding is strict: wrong length or a non-hex character is an error
// naming the offending position. And untrusted text made printable for logs.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::crypto {

// Lower-case hex of `bytes`.
std::string to_hex(std::span<const std::uint8_t> bytes);

// Decodes `hex` (either case) into exactly out.size() bytes. `what` names the
// value in the error message ("seed", "public key").
Status from_hex(std::string_view hex, std::span<std::uint8_t> out, std::string_view what);

// Decodes hex of any even length.
Result<std::vector<std::uint8_t>> from_hex(std::string_view hex, std::string_view what);

// `text` with its control characters (below 0x20, and 0x7f) escaped as
// \xNN: what a peer or a file sent, made safe for a log line (no forged
// lines, no ANSI escapes).
std::string printable_text(std::string_view text);

template <std::size_t N>
Result<std::array<std::uint8_t, N>> array_from_hex(std::string_view hex, std::string_view what) {
  std::array<std::uint8_t, N> out{};
  if (auto status = from_hex(hex, out, what); !status) return status.error();
  return out;
}

}  // namespace shoal::crypto
