// CurveZMQ transport over real TCP on 127.0.0.1: enrolment, refusal, key
// pinning, live reload of the enrolment list, and bad peers being dropped
// while the server keeps serving. Waits are bounded by kPatience and end as
// soon as the awaited event arrives; they never stand in for synchronisation.
#include "shoal/protocol/transport.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <optional>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::protocol;
using namespace std::chrono_literals;
using shoal::testing::TempDir;

namespace {

constexpr auto kPatience = 10s;

// Reads a socket's monitor events (zmq_socket_monitor) so tests can wait for
// a handshake to succeed or fail.
class Monitor {
 public:
  Monitor(zmq::context_t& context, zmq::socket_t& socket) {
    static int counter = 0;
    const std::string endpoint = "inproc://test-monitor-" + std::to_string(counter++);
    REQUIRE(zmq_socket_monitor(socket.handle(), endpoint.c_str(), ZMQ_EVENT_ALL) == 0);
    pair_ = zmq::socket_t(context, zmq::socket_type::pair);
    pair_.set(zmq::sockopt::linger, 0);
    pair_.connect(endpoint);
  }

  // The first event in `wanted` to arrive within the patience, or nullopt.
  // Events not in `wanted` are recorded and skipped.
  std::optional<std::uint16_t> wait_for(int wanted, std::chrono::milliseconds patience = kPatience) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      zmq::pollitem_t item{pair_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, left) == 0) return std::nullopt;
      zmq::message_t event, address;
      (void)pair_.recv(event);
      (void)pair_.recv(address);
      std::uint16_t code = 0;
      std::memcpy(&code, event.data(), sizeof code);
      seen_ |= code;
      if (code & wanted) return code;
    }
  }

  // Every event seen so far, including any that are queued now.
  int seen() {
    (void)wait_for(0, 0ms);
    return seen_;
  }

 private:
  zmq::socket_t pair_;
  int seen_ = 0;
};

constexpr int kHandshakeFailed =
    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;

// Server and devices share the context; it is terminated after the last socket closes.
struct Server {
  TempDir dir;
  std::shared_ptr<zmq::context_t> context_owner = std::make_shared<zmq::context_t>();
  zmq::context_t& context = *context_owner;
  crypto::IdentityKeyPair identity = crypto::IdentityKeyPair::generate();
  std::unique_ptr<ZapAuthenticator> authenticator;
  std::optional<zmq::socket_t> socket;
  std::optional<Monitor> monitor;
  std::string endpoint;
  Limits limits;

  explicit Server(const std::vector<crypto::PublicIdentity>& enrolled, Limits server_limits = {})
      : limits(server_limits) {
    write_enrolment(enrolled);
    auto started = ZapAuthenticator::start(context, dir / "devices.txt");
    REQUIRE(started);
    authenticator = std::move(started).value();
    auto bound = bind_server_socket(context, *authenticator, identity, "tcp://127.0.0.1:*", limits);
    REQUIRE(bound);
    socket.emplace(std::move(bound).value());
    monitor.emplace(context, *socket);
    endpoint = last_endpoint(*socket);
  }

  void write_enrolment(const std::vector<crypto::PublicIdentity>& enrolled) {
    std::string text;
    for (const auto& key : enrolled) text += crypto::format_ed25519_public(key.ed25519()) + "\n";
    REQUIRE(base::write_file_durably(dir / "devices.txt", text));
  }

  std::optional<FromPeer> receive(std::chrono::milliseconds timeout = kPatience) {
    return receive_from_peer(*socket, limits, timeout);
  }
};

struct Device {
  crypto::IdentityKeyPair identity = crypto::IdentityKeyPair::generate();
  std::shared_ptr<zmq::context_t> context;
  std::optional<zmq::socket_t> socket;
  std::optional<Monitor> monitor;

  void connect(Server& server, const crypto::PublicIdentity& pinned_server_key) {
    context = server.context_owner;
    auto connected = connect_client_socket(server.context, identity, pinned_server_key, server.endpoint, Limits{});
    REQUIRE(connected);
    socket.emplace(std::move(connected).value());
    monitor.emplace(server.context, *socket);
  }
  void connect(Server& server) { connect(server, server.identity.public_identity()); }

  bool say_hello() { return send_to_server(*socket, encode(Hello{"test-agent", 0, true})); }
};

}  // namespace

TEST_CASE("an enrolled device talks to the server, which sees its identity") {
  Device device;
  Server server({device.identity.public_identity()});
  device.connect(server);
  REQUIRE(device.say_hello());

  auto received = server.receive();
  REQUIRE(received);
  REQUIRE(received->message);
  auto hello = decode<Hello>(*received->message);
  REQUIRE(hello);
  CHECK(hello->agent_version == "test-agent");
  CHECK(received->user_id == crypto::format_ed25519_public(device.identity.public_identity().ed25519()));

  REQUIRE(send_to_peer(*server.socket, received->routing_id, encode(Welcome{"test-server", 4, 1000})));
  auto reply = receive_from_server(*device.socket, Limits{}, kPatience);
  REQUIRE(reply);
  REQUIRE(*reply);
  CHECK(decode<Welcome>(**reply)->model_version == 4);
  CHECK(server.authenticator->counters().admitted == 1);
}

TEST_CASE("an unknown device key is refused during the handshake") {
  Device enrolled, stranger;
  Server server({enrolled.identity.public_identity()});
  stranger.connect(server);
  REQUIRE(stranger.say_hello());  // queued; must never be delivered

  REQUIRE(stranger.monitor->wait_for(kHandshakeFailed) == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
  CHECK(server.authenticator->counters().refused >= 1);
  CHECK(server.authenticator->counters().admitted == 0);
  CHECK_FALSE(server.receive(0ms));
}

TEST_CASE("a device pinning the wrong server key never completes a handshake") {
  Device device;
  Server server({device.identity.public_identity()});
  const auto impostor = crypto::IdentityKeyPair::generate().public_identity();
  device.connect(server, impostor);
  REQUIRE(device.say_hello());

  // The server cannot open a HELLO sealed to another key.
  REQUIRE(server.monitor->wait_for(kHandshakeFailed));
  CHECK((device.monitor->seen() & ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0);
  CHECK(server.authenticator->counters().admitted == 0);
  CHECK_FALSE(server.receive(0ms));
}

TEST_CASE("enrolling and revoking take effect without a restart") {
  Device first, second;
  Server server({first.identity.public_identity()});

  server.write_enrolment({first.identity.public_identity(), second.identity.public_identity()});
  second.connect(server);
  REQUIRE(second.say_hello());
  auto received = server.receive();
  REQUIRE(received);
  CHECK(received->user_id == crypto::format_ed25519_public(second.identity.public_identity().ed25519()));

  server.write_enrolment({second.identity.public_identity()});
  first.connect(server);
  REQUIRE(first.say_hello());
  CHECK(first.monitor->wait_for(kHandshakeFailed) == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
  CHECK(server.authenticator->enrolled_count() == 1);
}

TEST_CASE("a broken enrolment file keeps the previous list in force") {
  Device device;
  Server server({device.identity.public_identity()});
  REQUIRE(base::write_file_durably(server.dir / "devices.txt", std::string_view("ed25519:not-hex\n")));
  auto status = server.authenticator->reload();
  REQUIRE_FALSE(status);
  CHECK(server.authenticator->last_reload_error().find("line 1") != std::string::npos);
  CHECK(server.authenticator->counters().reload_failures == 1);

  device.connect(server);
  REQUIRE(device.say_hello());
  auto received = server.receive();
  REQUIRE(received);
  CHECK(received->message);
}

TEST_CASE("a garbage message is reported, and the same peer's next message still arrives") {
  Device device;
  Server server({device.identity.public_identity()});
  device.connect(server);
  std::vector<zmq::message_t> garbage;
  garbage.emplace_back(std::string_view("\xc1\xc1 not msgpack"));
  REQUIRE(send_to_server(*device.socket, std::move(garbage)));
  REQUIRE(device.say_hello());

  auto bad = server.receive();
  REQUIRE(bad);
  REQUIRE_FALSE(bad->message);
  CHECK(bad->message.error().fault == DecodeFault::malformed);
  REQUIRE(send_to_peer(*server.socket, bad->routing_id,
                       encode(Refusal{to_string(bad->message.error().fault), bad->message.error().describe()})));
  auto good = server.receive();
  REQUIRE(good);
  CHECK(good->message);
  auto refusal = receive_from_server(*device.socket, Limits{}, kPatience);
  REQUIRE(refusal);
  CHECK(decode<Refusal>(**refusal)->fault == "malformed");
}

TEST_CASE("a message with too many frames is drained whole and the next one is intact") {
  Limits limits;
  limits.max_payload_frames = 2;
  Device device;
  Server server({device.identity.public_identity()}, limits);
  device.connect(server);
  REQUIRE(send_to_server(*device.socket, encode(Heartbeat{1}, std::vector<zmq::message_t>(5))));
  REQUIRE(send_to_server(*device.socket, encode(Heartbeat{2})));

  auto flooded = server.receive();
  REQUIRE(flooded);
  REQUIRE_FALSE(flooded->message);
  CHECK(flooded->message.error().fault == DecodeFault::too_many_frames);
  auto next = server.receive();
  REQUIRE(next);
  REQUIRE(next->message);
  CHECK(decode<Heartbeat>(*next->message)->sequence == 2);
}

TEST_CASE("a peer sending an oversized frame is disconnected and the server serves others") {
  Limits limits;
  limits.max_header_bytes = 1024;
  limits.max_payload_bytes = 1024;
  Device flooder, polite;
  Server server({flooder.identity.public_identity(), polite.identity.public_identity()}, limits);
  flooder.connect(server);
  std::vector<zmq::message_t> big;
  big.emplace_back(4096);
  REQUIRE(send_to_server(*flooder.socket, encode(Heartbeat{1}, std::move(big))));
  REQUIRE(server.monitor->wait_for(ZMQ_EVENT_DISCONNECTED));

  polite.connect(server);
  REQUIRE(polite.say_hello());
  auto received = server.receive();
  REQUIRE(received);
  REQUIRE(received->message);
  CHECK(received->user_id == crypto::format_ed25519_public(polite.identity.public_identity().ed25519()));
}

// An authenticator on `context` over an empty enrolment list in `dir`.
std::unique_ptr<ZapAuthenticator> start_empty_authenticator(zmq::context_t& context, const TempDir& dir) {
  REQUIRE(base::write_file_durably(dir / "devices.txt", std::string_view("")));
  auto authenticator = ZapAuthenticator::start(context, dir / "devices.txt");
  REQUIRE(authenticator);
  return std::move(authenticator).value();
}

TEST_CASE("binding an impossible endpoint is an error naming it") {
  zmq::context_t context;
  TempDir dir;
  const auto authenticator = start_empty_authenticator(context, dir);
  auto bound = bind_server_socket(context, *authenticator, crypto::IdentityKeyPair::generate(),
                                  "tcp://256.0.0.1:1", Limits{});
  REQUIRE_FALSE(bound);
  CHECK(bound.error().message.find("tcp://256.0.0.1:1") != std::string::npos);
}

TEST_CASE("a second authenticator on one context is refused") {
  zmq::context_t context;
  TempDir dir;
  const auto first = start_empty_authenticator(context, dir);
  auto second = ZapAuthenticator::start(context, dir / "devices.txt");
  REQUIRE_FALSE(second);
  CHECK(second.error().message.find("another authenticator") != std::string::npos);
}

TEST_CASE("a server socket refuses an authenticator that serves another context") {
  zmq::context_t context, other;
  TempDir dir;
  const auto authenticator = start_empty_authenticator(other, dir);
  auto bound = bind_server_socket(context, *authenticator, crypto::IdentityKeyPair::generate(),
                                  "tcp://127.0.0.1:*", Limits{});
  REQUIRE_FALSE(bound);
  CHECK(bound.error().message.find("another ZeroMQ context") != std::string::npos);
}
