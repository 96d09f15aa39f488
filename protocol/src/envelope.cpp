#include "shoal/protocol/envelope.h"

namespace shoal::protocol {

std::optional<std::string_view> message_type_name(std::uint16_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::hello: return "hello";
    case MessageType::welcome: return "welcome";
    case MessageType::heartbeat: return "heartbeat";
    case MessageType::refusal: return "refusal";
    case MessageType::train_task: return "train_task";
    case MessageType::update_report: return "update_report";
    case MessageType::evaluate_task: return "evaluate_task";
    case MessageType::evaluation_report: return "evaluation_report";
    case MessageType::fetch_file: return "fetch_file";
    case MessageType::file_chunk: return "file_chunk";
    case MessageType::advertise_keys: return "advertise_keys";
    case MessageType::key_roster: return "key_roster";
    case MessageType::share_keys: return "share_keys";
    case MessageType::share_bundle: return "share_bundle";
    case MessageType::masked_input: return "masked_input";
    case MessageType::unmask_request: return "unmask_request";
    case MessageType::unmask_response: return "unmask_response";
    case MessageType::health_report: return "health_report";
  }
  return std::nullopt;
}

std::span<const std::uint8_t> Envelope::payload(std::size_t index) const {
  const auto& frame = payloads_.at(index);
  return {frame.data<std::uint8_t>(), frame.size()};
}

std::vector<zmq::message_t> encode_envelope(MessageType type, const HeaderWriter& header,
                                            std::vector<zmq::message_t> payloads) {
  msgpack::sbuffer frame;
  msgpack::packer<msgpack::sbuffer> packer(frame);
  packer.pack_array(3);
  packer.pack_uint32(kProtocolVersion);
  packer.pack_uint16(static_cast<std::uint16_t>(type));
  const auto map = header.finish();
  frame.write(map.data(), map.size());

  std::vector<zmq::message_t> frames;
  frames.reserve(1 + payloads.size());
  frames.emplace_back(frame.data(), frame.size());
  for (auto& payload : payloads) frames.push_back(std::move(payload));
  return frames;
}

Decoded<Envelope> decode_envelope(std::vector<zmq::message_t> frames, const Limits& limits) {
  if (frames.empty()) return DecodeError{DecodeFault::missing_frame, "header", "message has no frames"};
  const std::size_t payload_count = frames.size() - 1;
  if (payload_count > limits.max_payload_frames) {
    return DecodeError{DecodeFault::too_many_frames, "payloads",
                       std::to_string(payload_count) + " payload frames, limit is " +
                           std::to_string(limits.max_payload_frames)};
  }
  const auto& head = frames.front();
  if (head.size() > limits.max_header_bytes) {
    return DecodeError{DecodeFault::oversized_frame, "header",
                       std::to_string(head.size()) + " bytes, limit is " + std::to_string(limits.max_header_bytes)};
  }
  for (std::size_t i = 1; i < frames.size(); ++i) {
    if (frames[i].size() > limits.max_payload_bytes) {
      return DecodeError{DecodeFault::oversized_frame, "payload " + std::to_string(i - 1),
                         std::to_string(frames[i].size()) + " bytes, limit is " +
                             std::to_string(limits.max_payload_bytes)};
    }
  }

  auto handle = unpack_strict({head.data<std::uint8_t>(), head.size()}, "header");
  if (!handle) return handle.error();
  const msgpack::object& root = handle->get();
  if (root.type != msgpack::type::ARRAY || root.via.array.size != 3) {
    return DecodeError{DecodeFault::malformed, "header", "expected [version, type, fields]"};
  }
  const msgpack::object* parts = root.via.array.ptr;
  if (parts[0].type != msgpack::type::POSITIVE_INTEGER) {
    return DecodeError{DecodeFault::mistyped_field, "version", "expected unsigned integer"};
  }
  if (parts[0].via.u64 != kProtocolVersion) {
    return DecodeError{DecodeFault::wrong_version, "version",
                       "peer speaks protocol " + std::to_string(parts[0].via.u64) + ", this build speaks " +
                           std::to_string(kProtocolVersion)};
  }
  if (parts[1].type != msgpack::type::POSITIVE_INTEGER) {
    return DecodeError{DecodeFault::mistyped_field, "type", "expected unsigned integer"};
  }
  const std::uint64_t type = parts[1].via.u64;
  if (type > 0xffff || !message_type_name(static_cast<std::uint16_t>(type))) {
    return DecodeError{DecodeFault::unknown_type, "type", "message type " + std::to_string(type) + " is unknown"};
  }
  auto fields = FieldMap::view(parts[2], "");
  if (!fields) return fields.error();

  frames.erase(frames.begin());
  return Envelope(static_cast<MessageType>(type), std::move(handle).value(), std::move(fields).value(),
                  std::move(frames));
}

}  // namespace shoal::protocol
