#include "shoal/crypto/encoding.h"

namespace shoal::crypto {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

Status from_hex(std::string_view hex, std::span<std::uint8_t> out, std::string_view what) {
  if (hex.size() != out.size() * 2) {
    return make_error(ErrorCode::corrupt, std::string(what) + ": expected " +
                                              std::to_string(out.size() * 2) + " hex digits, got " +
                                              std::to_string(hex.size()));
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      const std::size_t bad = hi < 0 ? 2 * i : 2 * i + 1;
      return make_error(ErrorCode::corrupt, std::string(what) + ": character " +
                                                std::to_string(bad + 1) + " is not a hex digit");
    }
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return ok_status();
}

Result<std::vector<std::uint8_t>> from_hex(std::string_view hex, std::string_view what) {
  if (hex.size() % 2 != 0) {
    return make_error(ErrorCode::corrupt, std::string(what) + ": odd number of hex digits (" +
                                              std::to_string(hex.size()) + ")");
  }
  std::vector<std::uint8_t> out(hex.size() / 2);
  if (auto status = from_hex(hex, out, what); !status) return status.error();
  return out;
}

std::string printable_text(std::string_view text) {
  std::string printable;
  printable.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      printable += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      printable += {'\\', 'x', kHex[byte >> 4], kHex[byte & 15]};
    }
  }
  return printable;
}

}  // namespace shoal::crypto
