// The wire envelope: every shoal message is one ZeroMQ multipart message of
//
//   frame 0      msgpack array [protocol version, message type, header map]
//   frames 1..n  raw payload bytes (tensors, weights), never re-encoded
//
// decode_envelope checks the version, the type, the frame count and sizes
// against Limits, and that frame 0 is exactly that array; the typed decoders
// in messages.h then read the header's fields. Over a ROUTER socket the
// routing-id frame comes first and is handled by transport.h, not here.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "shoal/protocol/decode_error.h"
#include "shoal/protocol/header.h"
#include "shoal/protocol/limits.h"

namespace shoal::protocol {

inline constexpr std::uint32_t kProtocolVersion = 1;

enum class MessageType : std::uint16_t {
  hello = 1,      // device -> server: who I am, what model I hold
  welcome = 2,    // server -> device: accepted, the current model version
  heartbeat = 3,  // either way: still here
  refusal = 4,    // either way: your last message was refused, and why
  train_task = 5,         // server -> device: train this round (round_messages.h)
  update_report = 6,      // device -> server: the round's update
  evaluate_task = 7,      // server -> device: evaluate a model version
  evaluation_report = 8,  // device -> server: loss and accuracy
  fetch_file = 9,         // device -> server: part of a release repository file (release_messages.h)
  file_chunk = 10,        // server -> device: that part
  advertise_keys = 11,    // secure aggregation (secagg_messages.h)
  key_roster = 12,
  share_keys = 13,
  share_bundle = 14,
  masked_input = 15,
  unmask_request = 16,
  unmask_response = 17,
  health_report = 18,     // device -> server: how its release install went, how the model runs (release_messages.h)
};

// The name of a known type ("hello"), or nullopt for an unknown number.
std::optional<std::string_view> message_type_name(std::uint16_t type);

// A decoded envelope. Move-only: it owns the received frames, and its header
// view borrows from them.
class Envelope {
 public:
  MessageType type() const { return type_; }
  const FieldMap& header() const { return header_; }
  std::size_t payload_count() const { return payloads_.size(); }
  std::span<const std::uint8_t> payload(std::size_t index) const;
  // Hands the payload frames over without copying (e.g. to fold an update).
  std::vector<zmq::message_t> take_payloads() { return std::move(payloads_); }

 private:
  friend Decoded<Envelope> decode_envelope(std::vector<zmq::message_t> frames, const Limits& limits);
  Envelope(MessageType type, msgpack::object_handle handle, FieldMap header,
           std::vector<zmq::message_t> payloads)
      : type_(type), handle_(std::move(handle)), header_(std::move(header)), payloads_(std::move(payloads)) {}

  MessageType type_;
  msgpack::object_handle handle_;
  FieldMap header_;
  std::vector<zmq::message_t> payloads_;
};

// Encodes a message: the header frame followed by `payloads`, moved, not copied.
std::vector<zmq::message_t> encode_envelope(MessageType type, const HeaderWriter& header,
                                            std::vector<zmq::message_t> payloads = {});

// Decodes frames received from a peer (routing id already removed).
Decoded<Envelope> decode_envelope(std::vector<zmq::message_t> frames, const Limits& limits);

}  // namespace shoal::protocol
