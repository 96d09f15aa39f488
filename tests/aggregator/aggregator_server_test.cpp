// The aggregator's socket loop over real CurveZMQ on 127.0.0.1: what an
// enrolled device that sends nonsense gets back, and that the loop serves on.
#include "shoal/aggregator/aggregator_server.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <future>
#include <sstream>
#include <thread>

#include "shoal/aggregator/checkpoint.h"
#include "shoal/base/durable_file.h"
#include "shoal/base/fault_injecting_env.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/enrolment.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
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

// An aggregator serving a model of `parameters` zeros, with one enrolled
// device connected to it over CurveZMQ.
struct Fixture {
  Fixture(std::size_t parameters, std::size_t min_devices, std::uint64_t final_version = 0,
          const std::function<void(aggregator::AggregatorConfig&)>& configure = {}) {
    REQUIRE(crypto::save_identity_key(dir / "server.key", {crypto::KeyRole::server, server_keys}));
    REQUIRE(base::write_file_durably(dir / "enrolled.txt",
                                       crypto::format_ed25519_public(device_keys.public_identity().ed25519()) + "\n"));
    auto layout = *weights::Layout::create({{"w", {static_cast<std::int64_t>(parameters)}}});
    REQUIRE(weights::write_weights_file(dir / "initial.weights",
                                        *weights::Weights::from_values(layout, 0, std::vector<float>(parameters))));
    config.bind = "tcp://127.0.0.1:*";
    config.server_key = dir / "server.key";
    config.enrolment = dir / "enrolled.txt";
    config.initial_weights = dir / "initial.weights";
    config.state_dir = dir / "state";
    config.round.min_devices = min_devices;
    config.round.secure.enabled = false;
    config.round.final_version = final_version;
    config.round.train_deadline = 60s;  // an upper bound: a round ends when its device reports
    if (configure) configure(config);
    start();
  }
  ~Fixture() { finish(); }

  // Opens the server on `config` (resuming from the state directory), runs
  // its loop and connects the device afresh.
  void start() {
    auto opened = aggregator::AggregatorServer::open(config, log);
    REQUIRE(opened);
    server = std::move(opened).value();
    first_round_seen = false;
    first_round = {};
    server->set_observer([this](const aggregator::RoundRecord& record, const aggregator::RoundCosts&,
                                const weights::Weights& global) {
      if (!first_round_seen.exchange(true)) first_round.set_value({record, global.values()[0]});
    });
    stop = false;
    loop = std::async(std::launch::async, [this] { return static_cast<bool>(server->run(stop)); });
    auto socket = protocol::connect_client_socket(context, device_keys, server_keys.public_identity(),
                                                  server->endpoint(), {});
    REQUIRE(socket);
    device = std::move(socket).value();
  }
  // Stops the loop, if it has not stopped by itself; true if it ran without error.
  bool finish() {
    stop = true;
    return loop.valid() && loop.get();
  }
  // Waits for the loop to stop by itself.
  bool stopped_by_itself() { return loop.wait_for(90s) == std::future_status::ready; }

  shoal::testing::TempDir dir;
  aggregator::AggregatorConfig config;
  crypto::IdentityKeyPair server_keys = crypto::IdentityKeyPair::generate();
  crypto::IdentityKeyPair device_keys = crypto::IdentityKeyPair::generate();
  std::ostringstream log;
  std::unique_ptr<aggregator::AggregatorServer> server;
  std::atomic<bool> stop{false};
  std::atomic<bool> first_round_seen{false};
  std::promise<std::pair<aggregator::RoundRecord, float>> first_round;  // and the global's first value after it
  std::future<bool> loop;
  zmq::context_t context;
  zmq::socket_t device;
};

// Says hello and sends `update` for the task that comes back, part by part.
void train_once(Fixture& f, const std::vector<float>& update) {
  REQUIRE(protocol::send_to_server(f.device, protocol::encode(protocol::Hello{"test", 0, true})));
  CHECK(next_message(f.device).type() == protocol::MessageType::welcome);
  auto task_envelope = next_message(f.device);
  auto task = protocol::decode<protocol::TrainTask>(task_envelope);
  REQUIRE(task);
  REQUIRE(task_envelope.payload_count() == 1);  // the model, since the device holds none
  protocol::UpdateReport report{task->round, task->model_version, 10, 1, 0, 1, 0};
  for (report.offset = 0; report.offset < update.size(); report.offset += protocol::kUpdatePartValues) {
    const auto values = std::min(protocol::kUpdatePartValues, update.size() - report.offset);
    std::vector<zmq::message_t> part;
    part.emplace_back(update.data() + report.offset, values * sizeof(float));
    REQUIRE(protocol::send_to_server(f.device, protocol::encode(report, std::move(part))));
  }
}

// Waits up to 60 s for the server to drop the device's connection.
bool wait_for_disconnect(Fixture& f, zmq::socket_t& monitor) {
  zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
  for (auto until = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < until;) {
    if (zmq::poll(&item, 1, 100ms) == 0) continue;
    zmq::message_t head, endpoint;
    (void)monitor.recv(head);
    (void)monitor.recv(endpoint);
    std::uint16_t event = 0;
    std::memcpy(&event, head.data(), sizeof event);
    if (event == ZMQ_EVENT_DISCONNECTED) return true;
  }
  (void)f;
  return false;
}

zmq::socket_t monitor_device(Fixture& f) {
  REQUIRE(zmq_socket_monitor(f.device.handle(), "inproc://device-monitor", ZMQ_EVENT_DISCONNECTED) == 0);
  zmq::socket_t monitor(f.context, zmq::socket_type::pair);
  monitor.connect("inproc://device-monitor");
  return monitor;
}

}  // namespace

TEST_CASE("a message of endless frames is cut off at the per-peer budget, before it is held whole") {
  Fixture f(4, 2, 0, [](aggregator::AggregatorConfig& config) {
    config.memory.per_peer_bytes = std::size_t{8} << 20;
    config.memory.total_bytes = std::size_t{16} << 20;
  });
  auto monitor = monitor_device(f);
  REQUIRE(protocol::send_to_server(f.device, protocol::encode(protocol::Hello{"test", 0, true})));
  CHECK(next_message(f.device).type() == protocol::MessageType::welcome);
  // 256 frames of 1 MiB in one message: libzmq would hold them all before the frame count is checked.
  const std::vector<std::uint8_t> frame(std::size_t{1} << 20, 0x5a);
  for (int i = 0; i < 256; ++i) REQUIRE(f.device.send(zmq::buffer(frame), zmq::send_flags::sndmore));
  REQUIRE(f.device.send(zmq::buffer(frame), zmq::send_flags::none));
  CHECK(wait_for_disconnect(f, monitor));
  REQUIRE(f.finish());
  INFO(f.log.str());
  CHECK(f.log.str().find("cut the connection from 127.0.0.1:") != std::string::npos);
  CHECK(f.log.str().find("over the per-peer budget of 8 MiB") != std::string::npos);
  CHECK(f.log.str().find("too many frames") == std::string::npos);  // it never arrived whole
}

TEST_CASE("a frame over the size limit drops the connection, and the close is logged with the device") {
  Fixture f(4, 2);
  auto monitor = monitor_device(f);
  REQUIRE(protocol::send_to_server(f.device, protocol::encode(protocol::Hello{"test", 0, true})));
  CHECK(next_message(f.device).type() == protocol::MessageType::welcome);
  const std::vector<std::uint8_t> frame(std::size_t{2} << 20, 0x5a);
  REQUIRE(f.device.send(zmq::buffer(frame), zmq::send_flags::none));
  CHECK(wait_for_disconnect(f, monitor));
  REQUIRE(f.finish());
  INFO(f.log.str());
  CHECK(f.log.str().find("connection from 127.0.0.1:") != std::string::npos);
  CHECK(f.log.str().find("(device ed25519:") != std::string::npos);
  CHECK(f.log.str().find("sent a frame over 1048576 bytes") != std::string::npos);
}

TEST_CASE("the aggregator refuses malformed and out-of-place messages and keeps serving") {
  Fixture f(4, 2);  // min_devices 2 is never reached: no round opens
  auto& device = f.device;
  auto& log = f.log;
  std::vector<zmq::message_t> garbage;
  garbage.emplace_back(std::string_view("not msgpack"));
  REQUIRE(protocol::send_to_server(device, std::move(garbage)));
  CHECK(refusal_fault(device) == "malformed");

  REQUIRE(protocol::send_to_server(device, protocol::encode(protocol::Heartbeat{1})));
  CHECK(refusal_fault(device) == "unknown device");  // no hello yet

  REQUIRE(protocol::send_to_server(device, protocol::encode(protocol::Welcome{"me", 0, 1})));
  CHECK(refusal_fault(device) == "unexpected type");  // a device does not send welcomes

  std::vector<zmq::message_t> update;
  update.emplace_back(std::string_view("0123456789abcdef"));
  REQUIRE(protocol::send_to_server(device, protocol::encode(protocol::UpdateReport{7, 0, 10, 1, 0, 1, 0},
                                                             std::move(update))));
  CHECK(refusal_fault(device) == "update refused");  // round 7 never started

  REQUIRE(protocol::send_to_server(device, protocol::encode(protocol::Hello{"test", 0, true})));
  auto welcome = next_message(device);
  CHECK(welcome.type() == protocol::MessageType::welcome);

  REQUIRE(f.finish());
  CHECK(log.str().find("dropped a message from ed25519:") != std::string::npos);
  CHECK(log.str().find("refused the update of ed25519:") != std::string::npos);
}

TEST_CASE("an update of several parts, each a full-size frame, completes a round over CurveZMQ") {
  const std::size_t parameters = 2 * protocol::kUpdatePartValues + 5;  // three parts
  Fixture f(parameters, 1, 1);  // one device, one round, then the loop stops by itself
  train_once(f, std::vector<float>(parameters, 0.25f));
  auto first_round = f.first_round.get_future();
  REQUIRE(first_round.wait_for(90s) == std::future_status::ready);
  const auto [record, first_value] = first_round.get();
  REQUIRE(f.finish());  // it stops by itself at version 1 if the round applied
  INFO(f.log.str());
  REQUIRE(record.applied);
  CHECK(record.reported == 1);
  CHECK(first_value == 0.25f);
  CHECK(f.server->global().version() == 1);
  CHECK(f.server->global().values()[parameters - 1] == 0.25f);
}

TEST_CASE("revoking a connected device's enrolment cuts it off without a restart") {
  Fixture f(4, 2);  // no round opens
  REQUIRE(protocol::send_to_server(f.device, protocol::encode(protocol::Hello{"test", 0, true})));
  CHECK(next_message(f.device).type() == protocol::MessageType::welcome);
  REQUIRE(protocol::revoke_device(f.dir / "enrolled.txt", f.device_keys.public_identity()));

  // Heartbeats of a known device get no answer, until the server sees the revocation.
  std::optional<protocol::Refusal> refusal;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  for (std::uint64_t beat = 1; !refusal && std::chrono::steady_clock::now() < give_up; ++beat) {
    REQUIRE(protocol::send_to_server(f.device, protocol::encode(protocol::Heartbeat{beat})));
    if (auto received = protocol::receive_from_server(f.device, {}, 500ms); received && *received) {
      auto decoded = protocol::decode<protocol::Refusal>(**received);
      if (decoded) refusal = *decoded;
    }
  }
  REQUIRE(refusal);
  CHECK(refusal->fault == "not enrolled");
  REQUIRE(f.finish());
  CHECK(f.log.str().find("is no longer enrolled: refusing its messages") != std::string::npos);
}

TEST_CASE("revocation cuts off a device that only ever fetches release files") {
  shoal::testing::TempDir releases;
  std::filesystem::create_directories(releases / "metadata");
  REQUIRE(base::write_file_durably(releases / "metadata" / "timestamp.json", "{}"));
  Fixture f(4, 2, 0, [&](aggregator::AggregatorConfig& config) { config.release_repository = releases.path(); });
  const auto fetch = [&](std::uint64_t request) {
    REQUIRE(protocol::send_to_server(f.device, protocol::encode(protocol::FetchFile{request, "metadata/timestamp.json",
                                                                                     0, 1024})));
    auto chunk = protocol::decode<protocol::FileChunk>(next_message(f.device));
    REQUIRE(chunk);
    return *chunk;
  };
  CHECK(fetch(1).status == "ok");
  REQUIRE(protocol::revoke_device(f.dir / "enrolled.txt", f.device_keys.public_identity()));

  // Served until the server reads the edited list; refused from then on, on the same connection.
  std::optional<protocol::FileChunk> refused;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  for (std::uint64_t request = 2; !refused && std::chrono::steady_clock::now() < give_up; ++request) {
    auto chunk = fetch(request);
    if (chunk.status != "ok") refused = chunk;
  }
  REQUIRE(refused);
  CHECK(refused->status == "refused");
  CHECK(refused->detail == "this device's enrolment was revoked");
  REQUIRE(f.finish());
}

TEST_CASE("a checkpoint the disk refuses stops the server with the reason, and a restart resumes the last committed model") {
  base::FaultInjectingEnv disk;
  disk.fail_every(base::FileOperation::sync, ENOSPC);  // a full disk: nothing written reaches it
  Fixture f(4, 1, 1, [&](aggregator::AggregatorConfig& config) { config.env = &disk; });
  train_once(f, std::vector<float>(4, 0.25f));
  REQUIRE(f.stopped_by_itself());
  CHECK_FALSE(f.finish());  // the loop ended with an error rather than serve a model it could not keep
  INFO(f.log.str());
  CHECK(f.log.str().find("round 1: applied") == std::string::npos);

  // The restarted server has nothing newer than what was committed: the initial model, version 0,
  // and no file of the failed checkpoint.
  f.config.env = &base::Env::standard();
  f.start();
  CHECK(f.server->global().version() == 0);
  CHECK(f.server->global().values()[0] == 0.0f);
  const auto names = base::Env::standard().list_directory(f.config.state_dir);
  REQUIRE(names);
  for (const auto& name : *names) {
    CHECK_FALSE(base::is_temporary_file_name(name));
    CHECK(name.find("global-v1") == std::string::npos);
  }
  train_once(f, std::vector<float>(4, 0.25f));
  auto first_round = f.first_round.get_future();
  REQUIRE(first_round.wait_for(90s) == std::future_status::ready);
  REQUIRE(f.finish());
  CHECK(f.server->global().version() == 1);
  auto checkpoint = aggregator::read_checkpoint(f.config.state_dir);
  REQUIRE(checkpoint);
  REQUIRE(checkpoint->has_value());
  CHECK((*checkpoint)->global.version() == 1);
}

TEST_CASE("a restarted aggregator counts the privacy spent before it against the budget") {
  Fixture f(4, 1, 1, [](aggregator::AggregatorConfig& config) {
    config.round.privacy.clip_norm = 1.0;
    config.round.privacy.noise_multiplier = 1.0;
  });
  train_once(f, std::vector<float>(4, 0.25f));
  auto first_round = f.first_round.get_future();
  REQUIRE(first_round.wait_for(90s) == std::future_status::ready);
  const auto record = first_round.get().first;
  REQUIRE(f.finish());
  REQUIRE(record.applied);
  REQUIRE(record.epsilon > 0);

  // Room for one such round, not two: only the checkpoint's accounting can refuse the next.
  f.config.round.privacy.epsilon_budget = record.epsilon * 1.01;
  f.config.round.final_version = 0;
  f.start();
  REQUIRE(protocol::send_to_server(f.device, protocol::encode(protocol::Hello{"test", 1, true})));
  CHECK(next_message(f.device).type() == protocol::MessageType::welcome);
  REQUIRE(f.stopped_by_itself());
  REQUIRE(f.finish());
  INFO(f.log.str());
  char spent[32];
  std::snprintf(spent, sizeof spent, "%.3f", record.epsilon);
  CHECK_THAT(f.log.str(), Catch::Contains(std::string("privacy spent so far: epsilon ") + spent));
  CHECK_THAT(f.log.str(), Catch::Contains("no further rounds: privacy budget spent"));
  CHECK(f.server->global().version() == 1);
}
