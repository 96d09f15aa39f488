// The round agent against a hand-driven server socket over real CurveZMQ:
// malformed and unusable server messages are dropped, never fatal.
#include "shoal/client/agent.h"

#include <catch2/catch.hpp>

#include <limits>
#include <mutex>
#include <thread>

#include "hand_driven_server.h"
#include "shoal/protocol/messages.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/weights/weights_file.h"

using namespace shoal;
using namespace std::chrono_literals;
using shoal::testing::HandDrivenServer;
using shoal::testing::next_of_type;

namespace {

// A task for round 1 on `global`, sent with the model and its hash.
void send_train_task(zmq::socket_t& router, const zmq::message_t& routing_id, const weights::Weights& global) {
  const auto bytes = weights::encode_weights(global);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(bytes.data(), bytes.size());
  protocol::TrainTask task{1, global.version(), 60'000, {}};
  task.model_hash = updater::values_hash(global);
  REQUIRE(protocol::send_to_peer(router, routing_id, protocol::encode(task, std::move(payload))));
}

}  // namespace

TEST_CASE("the agent drops malformed and unusable server messages and keeps going") {
  HandDrivenServer server;

  auto model = inference::Model::from_zoo("logreg", 0);
  REQUIRE(model);
  auto agent = server.agent(std::move(model).value(), {});
  auto& router = server.router;
  shoal::testing::RunningAgent running(*agent);

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
  running.stop();
  CHECK(agent->counters().dropped_messages == 2);
  CHECK(agent->counters().rounds_trained == 0);
  CHECK(agent->model_version() == 0);
}

TEST_CASE("the agent sends its update in order as parts of kUpdatePartValues, zero_update sends zeros untrained") {
  HandDrivenServer server;

  auto model = inference::Model::from_zoo("cnn", 0);  // 1.66M parameters: seven parts
  REQUIRE(model);
  const auto global = model->get_weights(3);
  client::AgentFaults faults;
  faults.zero_update = true;
  auto agent = server.agent(std::move(model).value(), {}, [](const std::string&) {}, faults);
  auto& router = server.router;
  shoal::testing::RunningAgent running(*agent);

  auto hello = next_of_type(router, protocol::MessageType::hello);
  REQUIRE(protocol::send_to_peer(router, hello.routing_id, protocol::encode(protocol::Welcome{"test", 3, 10'000})));
  send_train_task(router, hello.routing_id, global);
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
  running.stop();
  CHECK(received == global.values().size());
  CHECK(parts == 7);
  CHECK(all_zero);
  CHECK(agent->counters().rounds_trained == 1);
}

TEST_CASE("an agent whose training diverges sends nothing for the round and says why") {
  HandDrivenServer server;
  auto model = inference::Model::from_zoo("logreg", 0);
  REQUIRE(model);
  auto global = model->get_weights(2);
  std::fill(global.values().begin(), global.values().end(), std::numeric_limits<float>::quiet_NaN());
  std::vector<std::string> lines;
  std::mutex lines_mutex;
  auto agent = server.agent(std::move(model).value(), {}, [&](const std::string& line) {
    const std::lock_guard lock(lines_mutex);
    lines.push_back(line);
  });
  auto& router = server.router;
  shoal::testing::RunningAgent running(*agent);

  auto hello = next_of_type(router, protocol::MessageType::hello);
  REQUIRE(protocol::send_to_peer(router, hello.routing_id, protocol::encode(protocol::Welcome{"test", 2, 60'000})));
  send_train_task(router, hello.routing_id, global);
  // The agent handles messages in order, and beats only once this welcome shortens its interval.
  REQUIRE(protocol::send_to_peer(router, hello.routing_id, protocol::encode(protocol::Welcome{"test", 2, 100})));
  bool sent_update = false;
  for (;;) {
    auto received = protocol::receive_from_peer(router, {}, 10s);
    REQUIRE(received);
    REQUIRE(received->message);
    if (received->message->type() == protocol::MessageType::heartbeat) break;
    sent_update = sent_update || received->message->type() == protocol::MessageType::update_report;
  }
  running.stop();
  CHECK_FALSE(sent_update);
  CHECK(agent->counters().rounds_diverged == 1);
  CHECK(agent->counters().rounds_trained == 0);
  const std::lock_guard lock(lines_mutex);
  for (const auto& line : lines) UNSCOPED_INFO(line);
  CHECK(std::any_of(lines.begin(), lines.end(), [](const std::string& line) {
    return line.find("round 1: training diverged, not taking part: the loss after training is") != std::string::npos;
  }));
}
