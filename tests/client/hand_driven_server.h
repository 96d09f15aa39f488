// A server socket a client test drives by hand over real CurveZMQ, with
// one device key enrolled, and a helper that waits for a message type.
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "shoal/base/durable_file.h"
#include "shoal/client/agent.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/transport.h"
#include "temp_dir.h"

namespace shoal::testing {

using namespace std::chrono_literals;

// The next message from the client, of the given type, failing the test after 10 s.
inline protocol::FromPeer next_of_type(zmq::socket_t& router, protocol::MessageType type) {
  // An upper bound only: a slow or sanitised build may take many seconds.
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < give_up) {
    auto received = protocol::receive_from_peer(router, {}, 100ms);
    if (received && received->message && received->message->type() == type) return std::move(*received);
  }
  FAIL("no message of the awaited type from the client");
  throw std::logic_error("unreachable");
}

// Runs an agent on a thread of its own; stops and joins it when the scope
// ends, also when a failed check throws (a joinable thread would terminate).
class RunningAgent {
 public:
  explicit RunningAgent(client::Agent& agent) : thread_([this, &agent] { agent.run(stop_); }) {}
  RunningAgent(const RunningAgent&) = delete;
  RunningAgent& operator=(const RunningAgent&) = delete;
  ~RunningAgent() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A server socket the test drives by hand, with one device key enrolled.
struct HandDrivenServer {
  HandDrivenServer() {
    REQUIRE(base::write_file_durably(dir / "enrolled.txt",
                                       crypto::format_ed25519_public(device_keys.public_identity().ed25519()) + "\n"));
    auto started = protocol::ZapAuthenticator::start(context, dir / "enrolled.txt");
    REQUIRE(started);
    authenticator = std::move(started).value();
    auto bound = protocol::bind_server_socket(context, *authenticator, server_keys, "tcp://127.0.0.1:*", {});
    REQUIRE(bound);
    router = std::move(bound).value();
  }
  // An agent of the enrolled device, with 64 synthetic samples, connecting here.
  std::unique_ptr<client::Agent> agent(inference::Model model, client::AgentOptions options,
                                       client::LogSink log = [](const std::string&) {}, client::AgentFaults faults = {}) {
    client::SyntheticSpec spec;
    spec.samples = 64;
    options.endpoint = protocol::last_endpoint(router);
    options.server = server_keys.public_identity();
    auto created = client::Agent::create(options, device_keys, std::move(model), client::make_synthetic(spec), {},
                                         std::move(log), std::move(faults));
    REQUIRE(created);
    return std::move(created).value();
  }

  shoal::testing::TempDir dir;
  crypto::IdentityKeyPair server_keys = crypto::IdentityKeyPair::generate();
  crypto::IdentityKeyPair device_keys = crypto::IdentityKeyPair::generate();
  zmq::context_t context;
  std::unique_ptr<protocol::ZapAuthenticator> authenticator;
  zmq::socket_t router;
};

}  // namespace shoal::testing
