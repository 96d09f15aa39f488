// Limits on what a peer may send. They are applied twice: libzmq enforces
// the per-frame size on every socket (ZMQ_MAXMSGSIZE, dropping the peer's
// connection), and the decoders check frame counts and header sizes, so a
// hostile peer cannot make a process allocate without bound.
#pragma once

#include <cstddef>

namespace shoal::protocol {

struct Limits {
  // Largest msgpack header frame accepted.
  std::size_t max_header_bytes = std::size_t{1} << 20;
  // Largest raw payload frame accepted (a whole model travels in one to a
  // device; the aggregator takes no more than an update part).
  std::size_t max_payload_bytes = std::size_t{1} << 30;
  // Most payload frames in one message.
  std::size_t max_payload_frames = 64;

  // The per-frame limit handed to libzmq.
  std::size_t max_frame_bytes() const {
    return max_header_bytes > max_payload_bytes ? max_header_bytes : max_payload_bytes;
  }
};

}  // namespace shoal::protocol
