// The typed messages of the shoal protocol. Each struct names its
// MessageType, how many payload frames it carries, and how it maps to and
// from header fields; encode() and decode<M>() are the only entry points.
//
// Messages for training rounds are added here as the round protocol grows;
// each one gets a decoder test and joins the fuzz target.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shoal/protocol/envelope.h"

namespace shoal::protocol {

// Device -> server, first message after connecting.
struct Hello {
  static constexpr MessageType kType = MessageType::hello;
  static constexpr std::size_t kMaxPayloads = 0;

  std::string agent_version;    // e.g. "shoal-agent 0.1.0"
  std::uint64_t model_version;  // the model version the device holds, 0 if none
  bool eligible;                // meets its training conditions now (charging, idle, unmetered)

  void write(HeaderWriter& header) const;
  static Decoded<Hello> read(const Envelope& envelope);
};

// Server -> device, answer to Hello.
struct Welcome {
  static constexpr MessageType kType = MessageType::welcome;
  static constexpr std::size_t kMaxPayloads = 0;

  std::string server_version;
  std::uint64_t model_version;          // the current global model version
  std::uint64_t heartbeat_interval_ms;  // how often the device should say it is alive

  void write(HeaderWriter& header) const;
  static Decoded<Welcome> read(const Envelope& envelope);
};

struct Heartbeat {
  static constexpr MessageType kType = MessageType::heartbeat;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t sequence;

  void write(HeaderWriter& header) const;
  static Decoded<Heartbeat> read(const Envelope& envelope);
};

// Sent back when a message is refused; the connection stays up.
struct Refusal {
  static constexpr MessageType kType = MessageType::refusal;
  static constexpr std::size_t kMaxPayloads = 0;

  std::string fault;   // a DecodeFault name, or a round-level reason ("not enrolled")
  std::string detail;  // human-readable explanation

  void write(HeaderWriter& header) const;
  static Decoded<Refusal> read(const Envelope& envelope);
};

template <typename M>
std::vector<zmq::message_t> encode(const M& message, std::vector<zmq::message_t> payloads = {}) {
  HeaderWriter header;
  message.write(header);
  return encode_envelope(M::kType, header, std::move(payloads));
}

// Checks the envelope's type and payload count for M, then reads M's fields.
template <typename M>
Decoded<M> decode(const Envelope& envelope) {
  if (envelope.type() != M::kType) {
    return DecodeError{DecodeFault::unexpected_type, "type",
                       std::string("expected ") + std::string(*message_type_name(
                                                      static_cast<std::uint16_t>(M::kType))) +
                           ", got " +
                           std::string(*message_type_name(static_cast<std::uint16_t>(envelope.type())))};
  }
  if (envelope.payload_count() > M::kMaxPayloads) {
    return DecodeError{DecodeFault::too_many_frames, "payloads",
                       std::to_string(envelope.payload_count()) + " payload frames, at most " +
                           std::to_string(M::kMaxPayloads) + " allowed"};
  }
  return M::read(envelope);
}

}  // namespace shoal::protocol
