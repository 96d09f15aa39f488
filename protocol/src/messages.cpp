#include "shoal/protocol/messages.h"

#include "assign_field.h"

namespace shoal::protocol {

using detail::assign;

void Hello::write(HeaderWriter& header) const {
  header.put("agent_version", agent_version).put("model_version", model_version).put("eligible", eligible);
}

Decoded<Hello> Hello::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  Hello hello{};
  if (auto error = assign(hello.agent_version, fields.get_string("agent_version"))) return *error;
  if (auto error = assign(hello.model_version, fields.get_uint("model_version"))) return *error;
  if (auto error = assign(hello.eligible, fields.get_bool("eligible"))) return *error;
  return hello;
}

void Welcome::write(HeaderWriter& header) const {
  header.put("server_version", server_version)
      .put("model_version", model_version)
      .put("heartbeat_interval_ms", heartbeat_interval_ms);
}

Decoded<Welcome> Welcome::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  Welcome welcome{};
  if (auto error = assign(welcome.server_version, fields.get_string("server_version"))) return *error;
  if (auto error = assign(welcome.model_version, fields.get_uint("model_version"))) return *error;
  if (auto error = assign(welcome.heartbeat_interval_ms, fields.get_uint("heartbeat_interval_ms"))) return *error;
  if (welcome.heartbeat_interval_ms == 0) {
    return DecodeError{DecodeFault::invalid_value, "heartbeat_interval_ms", "must be positive"};
  }
  return welcome;
}

void Heartbeat::write(HeaderWriter& header) const { header.put("sequence", sequence); }

Decoded<Heartbeat> Heartbeat::read(const Envelope& envelope) {
  Heartbeat heartbeat{};
  if (auto error = assign(heartbeat.sequence, envelope.header().get_uint("sequence"))) return *error;
  return heartbeat;
}

void Refusal::write(HeaderWriter& header) const { header.put("fault", fault).put("detail", detail); }

Decoded<Refusal> Refusal::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  Refusal refusal{};
  if (auto error = assign(refusal.fault, fields.get_string("fault"))) return *error;
  if (auto error = assign(refusal.detail, fields.get_string("detail"))) return *error;
  return refusal;
}

}  // namespace shoal::protocol
