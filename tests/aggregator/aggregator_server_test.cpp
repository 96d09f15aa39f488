// The aggregator's socket loop over real CurveZMQ on 127.0.0.1: what an
// enrolled device that sends nonsense gets back, and that the loop serves on.
#include "shoal/aggregator/aggregator_server.h"

#include <catch2/catch.hpp>

#include <sstream>
#include <thread>

#include "shoal/crypto/durable_file.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/weights/weights_file.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;

namespace {

// The next message from the server, failing the test after 10 s.
protocol::Envelope next_message(zmq::socket_t& device) {
  auto received = protocol::receive_from_server(device, {}, 10s);
  REQUIRE(received);
  REQUIRE(*received);
  return std::move(*received).value();
}

std::string refusal_fault(zmq::socket_t& device) {
  auto envelope = next_message(device);
  auto refusal = protocol::decode<protocol::Refusal>(envelope);
  REQUIRE(refusal);
  return refusal->fault;
}

}  // namespace

TEST_CASE("the aggregator refuses malformed and out-of-place messages and keeps serving") {
  shoal::testing::TempDir dir;
  const auto server_keys = crypto::IdentityKeyPair::generate();
  const auto device_keys = crypto::IdentityKeyPair::generate();
  REQUIRE(crypto::save_identity_key(dir / "server.key", {crypto::KeyRole::server, server_keys}));
  REQUIRE(crypto::write_file_durably(dir / "enrolled.txt",
                                     crypto::format_ed25519_public(device_keys.public_identity().ed25519()) + "\n"));
  auto layout = *weights::Layout::create({{"w", {4}}});
  REQUIRE(weights::write_weights_file(dir / "initial.weights", *weights::Weights::from_values(layout, 0, {0, 0, 0, 0})));
  aggregator::AggregatorConfig config;
  config.bind = "tcp://127.0.0.1:*";
  config.server_key = dir / "server.key";
  config.enrolment = dir / "enrolled.txt";
  config.initial_weights = dir / "initial.weights";
  config.state_dir = dir / "state";
  config.round.min_devices = 2;  // never reached: no round opens

  std::ostringstream log;
  auto server = aggregator::AggregatorServer::open(config, log);
  REQUIRE(server);
  std::atomic<bool> stop{false};
  std::thread loop([&] { REQUIRE((*server)->run(stop)); });

  zmq::context_t context;
  auto device = protocol::connect_client_socket(context, device_keys, server_keys.public_identity(),
                                                (*server)->endpoint(), {});
  REQUIRE(device);
  std::vector<zmq::message_t> garbage;
  garbage.emplace_back(std::string_view("not msgpack"));
  REQUIRE(protocol::send_to_server(*device, std::move(garbage)));
  CHECK(refusal_fault(*device) == "malformed");

  REQUIRE(protocol::send_to_server(*device, protocol::encode(protocol::Heartbeat{1})));
  CHECK(refusal_fault(*device) == "unknown device");  // no hello yet

  REQUIRE(protocol::send_to_server(*device, protocol::encode(protocol::Welcome{"me", 0, 1})));
  CHECK(refusal_fault(*device) == "unexpected type");  // a device does not send welcomes

  std::vector<zmq::message_t> update;
  update.emplace_back(std::string_view("0123456789abcdef"));
  REQUIRE(protocol::send_to_server(*device, protocol::encode(protocol::UpdateReport{7, 0, 10, 1, 0, 1, 0},
                                                             std::move(update))));
  CHECK(refusal_fault(*device) == "update refused");  // round 7 never started

  REQUIRE(protocol::send_to_server(*device, protocol::encode(protocol::Hello{"test", 0, true})));
  auto welcome = next_message(*device);
  CHECK(welcome.type() == protocol::MessageType::welcome);

  stop = true;
  loop.join();
  CHECK(log.str().find("dropped a message from ed25519:") != std::string::npos);
  CHECK(log.str().find("refused the update of ed25519:") != std::string::npos);
}
