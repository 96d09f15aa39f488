#include "shoal/protocol/transport.h"

#include <cerrno>

#include "shoal/protocol/peer_memory_guard.h"
#include "shoal/protocol/round_messages.h"

namespace shoal::protocol {
namespace {

constexpr int kLingerMs = 200;  // enough to flush a final reply, short enough not to stall shutdown
// libzmq checks ZMQ_MAXMSGSIZE against a frame as it comes off the wire,
// which under CurveZMQ is the encrypted MESSAGE command: 33 bytes more than
// the frame. The decoders check the exact sizes afterwards.
constexpr std::int64_t kCurveFrameOverhead = 64;

void set_common_options(zmq::socket_t& socket, const Limits& limits) {
  socket.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(limits.max_frame_bytes()) + kCurveFrameOverhead);
  socket.set(zmq::sockopt::linger, kLingerMs);
}

// Receives the remaining frames of a message, keeping at most `keep` of them.
// Returns false if more arrived than were kept (the rest are discarded).
// Adds every frame's wire size to `wire_bytes`.
bool receive_rest(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, std::size_t keep,
                  std::size_t& wire_bytes) {
  bool within_limit = true;
  while (socket.get(zmq::sockopt::rcvmore)) {
    zmq::message_t frame;
    (void)socket.recv(frame, zmq::recv_flags::none);  // parts of a started message are already queued
    wire_bytes += curve_wire_bytes(frame.size());
    if (frames.size() < keep) {
      frames.push_back(std::move(frame));
    } else {
      within_limit = false;
    }
  }
  return within_limit;
}

bool wait_readable(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  try {
    return zmq::poll(&item, 1, timeout) > 0;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return false;  // a signal (SIGTERM, Ctrl-C): the caller checks its stop flag
    throw;
  }
}

Decoded<Envelope> decode_received(std::vector<zmq::message_t> frames, bool within_limit, const Limits& limits) {
  if (!within_limit) {
    return DecodeError{DecodeFault::too_many_frames, "payloads",
                       "more than " + std::to_string(limits.max_payload_frames) + " payload frames"};
  }
  return decode_envelope(std::move(frames), limits);
}

}  // namespace

Result<zmq::socket_t> bind_server_socket(zmq::context_t& context, const ZapAuthenticator& authenticator,
                                         const crypto::IdentityKeyPair& server, const std::string& endpoint,
                                         const Limits& limits) {
  if (!authenticator.serves(context)) {
    return make_error(ErrorCode::invalid_argument,
                      "server socket for '" + endpoint + "': the authenticator serves another ZeroMQ context, "
                      "so this socket's handshakes would go unchecked");
  }
  try {
    zmq::socket_t socket(context, zmq::socket_type::router);
    set_common_options(socket, limits);
    const auto secret = server.curve25519_secret();
    socket.set(zmq::sockopt::curve_server, true);
    socket.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(secret.data(), secret.size()));
    // Handshakes go to the authenticator this function demands as a parameter:
    // libzmq admits every CURVE client when no ZAP handler is bound.
    socket.set(zmq::sockopt::zap_domain, "shoal");
    // Report unroutable sends (a device that went away) instead of dropping silently.
    socket.set(zmq::sockopt::router_mandatory, true);
    socket.set(zmq::sockopt::rcvhwm, kServerQueuedMessages);
    socket.bind(endpoint);
    return socket;
  } catch (const zmq::error_t& e) {
    return make_error(ErrorCode::invalid_argument, "cannot bind server socket at '" + endpoint + "': " + e.what());
  }
}

Result<zmq::socket_t> connect_client_socket(zmq::context_t& context, const crypto::IdentityKeyPair& device,
                                            const crypto::PublicIdentity& server, const std::string& endpoint,
                                            const Limits& limits) {
  try {
    zmq::socket_t socket(context, zmq::socket_type::dealer);
    set_common_options(socket, limits);
    const auto secret = device.curve25519_secret();
    const auto& public_key = device.public_identity().curve25519();
    const auto& server_key = server.curve25519();
    socket.set(zmq::sockopt::curve_serverkey, zmq::const_buffer(server_key.data(), server_key.size()));
    socket.set(zmq::sockopt::curve_publickey, zmq::const_buffer(public_key.data(), public_key.size()));
    socket.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(secret.data(), secret.size()));
    // libzmq reconnects by itself, doubling the wait after each failure up to the maximum.
    socket.set(zmq::sockopt::reconnect_ivl, 200);
    // An update is queued as all its parts at once: leave room for the largest on top of the default queue.
    const std::size_t update_parts = limits.max_payload_bytes / (kUpdatePartValues * sizeof(float)) + 1;
    socket.set(zmq::sockopt::sndhwm, static_cast<int>(1000 + update_parts));
    socket.set(zmq::sockopt::reconnect_ivl_max, 10'000);
    socket.connect(endpoint);
    return socket;
  } catch (const zmq::error_t& e) {
    return make_error(ErrorCode::invalid_argument, "cannot connect to '" + endpoint + "': " + e.what());
  }
}

std::string last_endpoint(zmq::socket_t& socket) { return socket.get(zmq::sockopt::last_endpoint); }

std::optional<FromPeer> receive_from_peer(zmq::socket_t& router, const Limits& limits,
                                          std::chrono::milliseconds timeout) {
  if (!wait_readable(router, timeout)) return std::nullopt;
  zmq::message_t routing_id;
  if (!router.recv(routing_id, zmq::recv_flags::dontwait)) return std::nullopt;
  std::vector<zmq::message_t> frames;
  std::size_t wire_bytes = 0;
  const bool within_limit = receive_rest(router, frames, 1 + limits.max_payload_frames, wire_bytes);
  // Every frame a CURVE peer sends carries the User-Id its ZAP reply gave it.
  std::string user_id;
  int connection = -1;
  if (!frames.empty()) {
    if (const char* id = frames.front().gets("User-Id")) user_id = id;
    connection = zmq_msg_get(frames.front().handle(), ZMQ_SRCFD);
  }
  std::size_t bytes = 0;
  for (const auto& frame : frames) bytes += frame.size();
  return FromPeer{std::move(routing_id), std::move(user_id), bytes,
                  decode_received(std::move(frames), within_limit, limits), connection, wire_bytes};
}

std::optional<Decoded<Envelope>> receive_from_server(zmq::socket_t& dealer, const Limits& limits,
                                                     std::chrono::milliseconds timeout) {
  if (!wait_readable(dealer, timeout)) return std::nullopt;
  std::vector<zmq::message_t> frames(1);
  if (!dealer.recv(frames[0], zmq::recv_flags::dontwait)) return std::nullopt;
  std::size_t wire_bytes = 0;
  const bool within_limit = receive_rest(dealer, frames, 1 + limits.max_payload_frames, wire_bytes);
  return decode_received(std::move(frames), within_limit, limits);
}

bool send_to_peer(zmq::socket_t& router, const zmq::message_t& routing_id, std::vector<zmq::message_t> frames) {
  try {
    zmq::message_t id(routing_id.data(), routing_id.size());
    if (!router.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      (void)router.send(frames[i], flags);  // later parts follow the first atomically
    }
    return true;
  } catch (const zmq::error_t&) {
    return false;  // EHOSTUNREACH: the peer disconnected (router_mandatory)
  }
}

bool send_to_server(zmq::socket_t& dealer, std::vector<zmq::message_t> frames) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const auto flags = (i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none) |
                       zmq::send_flags::dontwait;
    if (!dealer.send(frames[i], flags)) return false;
  }
  return true;
}

}  // namespace shoal::protocol
