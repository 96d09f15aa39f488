#include "shoal/protocol/decode_error.h"

namespace shoal::protocol {

const char* to_string(DecodeFault fault) {
  switch (fault) {
    case DecodeFault::malformed: return "malformed";
    case DecodeFault::wrong_version: return "wrong version";
    case DecodeFault::unknown_type: return "unknown type";
    case DecodeFault::unexpected_type: return "unexpected type";
    case DecodeFault::missing_field: return "missing field";
    case DecodeFault::mistyped_field: return "mistyped field";
    case DecodeFault::invalid_value: return "invalid value";
    case DecodeFault::oversized_frame: return "oversized frame";
    case DecodeFault::too_many_frames: return "too many frames";
    case DecodeFault::missing_frame: return "missing frame";
  }
  return "decode error";
}

std::string DecodeError::describe() const {
  std::string text = to_string(fault);
  if (!field.empty()) text += " '" + field + "'";
  if (!detail.empty()) text += ": " + detail;
  return text;
}

}  // namespace shoal::protocol
