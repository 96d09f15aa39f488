// The round agent against a hand-driven server socket over real CurveZMQ:
// malformed and unusable server messages are dropped, never fatal.
#include "shoal/client/agent.h"

#include <catch2/catch.hpp>

#include <thread>

#include "shoal/crypto/durable_file.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/transport.h"
#include "shoal/weights/weights_file.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;

namespace {

// The next message from the agent, of the given type, failing the test after 10 s.
protocol::FromPeer next_of_type(zmq::socket_t& router, protocol::MessageType type) {
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < give_up) {
    auto received = protocol::receive_from_peer(router, {}, 100ms);
    if (received && received->message && received->message->type() == type) return std::move(*received);
  }
  FAIL("no message of the awaited type from the agent");
  throw std::logic_error("unreachable");
}

// A server socket the test drives by hand, with one device key enrolled.
struct HandDrivenServer {
  HandDrivenServer() {
    REQUIRE(crypto::write_file_durably(dir / "enrolled.txt",
                                       crypto::format_ed25519_public(device_keys.public_identity().ed25519()) + "\n"));
    auto started = protocol::ZapAuthenticator::start(context, dir / "enrolled.txt");
    REQUIRE(started);
    authenticator = std::move(started).value();
    auto bound = protocol::bind_server_socket(context, *authenticator, server_keys, "tcp://127.0.0.1:*", {});
    REQUIRE(bound);
    router = std::move(bound).value();
  }
  // An agent of the enrolled device, with 64 synthetic samples, connecting here.
  std::unique_ptr<client::Agent> agent(inference::Model model, client::AgentOptions options) {
    client::SyntheticSpec spec;
    spec.samples = 64;
    options.endpoint = protocol::last_endpoint(router);
    options.server = server_keys.public_identity();
    auto created = client::Agent::create(options, device_keys, std::move(model), client::make_synthetic(spec), {},
                                         [](const std::string&) {});
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

}  // namespace

TEST_CASE("the agent drops malformed and unusable server messages and keeps going") {
  HandDrivenServer server;

  auto model = inference::Model::from_zoo("logreg", 0);
  REQUIRE(model);
  auto agent = server.agent(std::move(model).value(), {});
  auto& router = server.router;
  std::atomic<bool> stop{false};
  std::thread running([&] { agent->run(stop); });

  auto hello = next_of_type(router, protocol::MessageType::hello);
  std::vector<zmq::message_t> garbage;
  garbage.emplace_back(std::string_view("not msgpack"));
  REQUIRE(protocol::send_to_peer(router, hello.routing_id, std::move(garbage)));
  // A train task whose model has another layout than the agent's logreg.
  auto foreign = *weights::Layout::create({{"w", {3}}});
  const auto bytes = weights::encode_weights(*weights::Weights::from_values(foreign, 1, {1, 2, 3}));
  std::vector<zmq::message_t> payload;
  payload.emplace_back(bytes.data(), bytes.size());
  REQUIRE(protocol::send_to_peer(router, hello.routing_id,
                                 protocol::encode(protocol::TrainTask{1, 1, 1000, {}}, std::move(payload))));
  REQUIRE(protocol::send_to_peer(router, hello.routing_id, protocol::encode(protocol::Welcome{"test", 1, 100})));
  // Messages are handled in order: a heartbeat after the welcome means the two before were handled.
  next_of_type(router, protocol::MessageType::heartbeat);
  stop = true;
  running.join();
  CHECK(agent->counters().dropped_messages == 2);
  CHECK(agent->counters().rounds_trained == 0);
  CHECK(agent->model_version() == 0);
}

TEST_CASE("the agent sends its update in order as parts of kUpdatePartValues; zero_update sends zeros untrained") {
  HandDrivenServer server;

  auto model = inference::Model::from_zoo("cnn", 0);  // 1.66M parameters: seven parts
  REQUIRE(model);
  const auto global = model->get_weights(3);
  client::AgentOptions options;
  options.zero_update = true;
  auto agent = server.agent(std::move(model).value(), options);
  auto& router = server.router;
  std::atomic<bool> stop{false};
  std::thread running([&] { agent->run(stop); });

  auto hello = next_of_type(router, protocol::MessageType::hello);
  REQUIRE(protocol::send_to_peer(router, hello.routing_id, protocol::encode(protocol::Welcome{"test", 3, 10'000})));
  const auto bytes = weights::encode_weights(global);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(bytes.data(), bytes.size());
  REQUIRE(protocol::send_to_peer(router, hello.routing_id,
                                 protocol::encode(protocol::TrainTask{1, 3, 60'000, {}}, std::move(payload))));
  std::size_t received = 0;
  std::size_t parts = 0;
  bool all_zero = true;
  while (received < global.values().size()) {
    auto part = next_of_type(router, protocol::MessageType::update_report);
    auto report = protocol::decode<protocol::UpdateReport>(*part.message);
    REQUIRE(report);
    CHECK(report->round == 1);
    CHECK(report->base_version == 3);
    CHECK(report->samples == 64);
    REQUIRE(report->offset == received);
    const auto frame = part.message->payload(0);
    const std::size_t values = frame.size() / sizeof(float);
    CHECK(values == std::min(protocol::kUpdatePartValues, global.values().size() - received));
    all_zero = all_zero && std::all_of(frame.begin(), frame.end(), [](std::uint8_t b) { return b == 0; });
    received += values;
    ++parts;
  }
  stop = true;
  running.join();
  CHECK(received == global.values().size());
  CHECK(parts == 7);
  CHECK(all_zero);
  CHECK(agent->counters().rounds_trained == 1);
}
