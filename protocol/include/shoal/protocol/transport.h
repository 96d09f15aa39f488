// CurveZMQ sockets and the send/receive calls that frame shoal envelopes.
//
// The server binds a ROUTER socket with its identity's Curve25519 key pair and
// admits peers through the ZapAuthenticator running on the same context
// (required by the constructor, so a server socket can never exist without
// authentication). A device connects a DEALER socket that pins the server's
// public key: a server with any other key never completes the handshake.
// Both set the per-frame size limit and a short linger. The server queues
// at most kServerQueuedMessages whole messages per peer: past that libzmq
// stops reading the peer, and TCP holds the sender back.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"
#include "shoal/protocol/envelope.h"
#include "shoal/protocol/limits.h"
#include "shoal/protocol/zap_authenticator.h"

namespace shoal::protocol {

// Whole messages a server socket queues per peer before it stops reading
// that peer: with 2 MiB messages, 32 MiB, within the default per-peer budget.
inline constexpr int kServerQueuedMessages = 16;

// Binds a CurveZMQ ROUTER socket at `endpoint` ("tcp://127.0.0.1:7400",
// "tcp://127.0.0.1:*"). Errors name the endpoint.
Result<zmq::socket_t> bind_server_socket(zmq::context_t& context, const ZapAuthenticator& authenticator,
                                         const crypto::IdentityKeyPair& server,
                                         const std::string& endpoint, const Limits& limits);

// Connects a CurveZMQ DEALER socket to `endpoint`, trusting only `server`.
// Lost connections are retried with exponential backoff (0.2 s to 10 s).
Result<zmq::socket_t> connect_client_socket(zmq::context_t& context,
                                            const crypto::IdentityKeyPair& device,
                                            const crypto::PublicIdentity& server,
                                            const std::string& endpoint, const Limits& limits);

// The endpoint a socket actually bound, with the port resolved.
std::string last_endpoint(zmq::socket_t& socket);

// A message received on the server's ROUTER socket.
struct FromPeer {
  zmq::message_t routing_id;  // pass back to send_to_peer
  std::string user_id;        // the ZAP User-Id: "ed25519:<hex>" of the enrolled device
  std::size_t bytes = 0;      // size of all frames received, for traffic accounting
  Decoded<Envelope> message;  // the envelope, or why it was refused
  int connection = -1;        // the connection's file descriptor (for MemoryWatch), -1 if unknown
  std::size_t wire_bytes = 0; // what every frame took on the wire, those discarded included
};

// Waits up to `timeout` for one message; nullopt if none came. A message
// over the frame-count limit is drained whole and reported as too_many_frames.
std::optional<FromPeer> receive_from_peer(zmq::socket_t& router, const Limits& limits,
                                          std::chrono::milliseconds timeout);
std::optional<Decoded<Envelope>> receive_from_server(zmq::socket_t& dealer, const Limits& limits,
                                                     std::chrono::milliseconds timeout);

// Sends an encoded message. Returns false if the peer is gone or the queue is
// full (never blocks).
bool send_to_peer(zmq::socket_t& router, const zmq::message_t& routing_id,
                  std::vector<zmq::message_t> frames);
bool send_to_server(zmq::socket_t& dealer, std::vector<zmq::message_t> frames);

}  // namespace shoal::protocol
