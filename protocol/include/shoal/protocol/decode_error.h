// DecodeError: why a message from the network was refused. Every decoder in
// protocol/ returns one instead of crashing or reading past a buffer; the
// fault says what kind of problem it was and `field` names where it was, so a
// log line tells an operator exactly what a misbehaving peer sent.
#pragma once

#include <string>

namespace shoal::protocol {

enum class DecodeFault {
  malformed,        // bytes that are not the expected msgpack structure
  wrong_version,    // the peer speaks another protocol version
  unknown_type,     // a message type this build does not know
  unexpected_type,  // a known type, but not the one this decoder reads
  missing_field,    // a required header field is absent
  mistyped_field,   // a header field has the wrong msgpack type
  invalid_value,    // a field has the right type but an unusable value
  oversized_frame,  // a frame is larger than the configured limit
  too_many_frames,  // more frames than the message type or the limit allows
  missing_frame,    // fewer payload frames than the message type requires
};

const char* to_string(DecodeFault fault);

struct DecodeError {
  DecodeFault fault = DecodeFault::malformed;
  std::string field;   // the header field or frame concerned, may be empty
  std::string detail;  // what was wrong with it

  // "missing field 'model_version': hello header has no such key"
  std::string describe() const;
};

}  // namespace shoal::protocol
