// The device's round state machine fed messages, results and clock ticks by
// hand: no socket, no thread, no model on disk.
#include "shoal/client/device_session.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "shoal/protocol/messages.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/weights/weights_file.h"

using namespace shoal;
using namespace std::chrono_literals;
using client::Clock;

namespace {

const Clock::time_point t0{};

weights::Layout small_layout() { return *weights::Layout::create({{"w", {3}}}); }

weights::Weights model_at(std::uint64_t version, float fill = 0.5f) {
  return *weights::Weights::from_values(small_layout(), version, {fill, fill, fill});
}

// What a real transport does: frames to bytes and back through the decoder.
protocol::Envelope received(std::vector<zmq::message_t> frames) {
  auto envelope = protocol::decode_envelope(std::move(frames), protocol::Limits{});
  REQUIRE(envelope);
  return std::move(envelope).value();
}

template <typename M>
std::vector<zmq::message_t> with_model(const M& message, const weights::Weights& model) {
  const auto bytes = weights::encode_weights(model);
  std::vector<zmq::message_t> payload;
  payload.emplace_back(bytes.data(), bytes.size());
  return protocol::encode(message, std::move(payload));
}

protocol::TrainTask task_for(std::uint64_t round, const weights::Weights& model) {
  protocol::TrainTask task{round, model.version(), 60'000, {}};
  task.model_hash = updater::values_hash(model);
  return task;
}

// A secure round's task, threshold 1, quantising at `scale`.
protocol::TrainTask secure_task_for(std::uint64_t round, const weights::Weights& model, double scale = 1) {
  auto task = task_for(round, model);
  task.secure = protocol::SecureParams{};
  task.secure->threshold = 1;
  task.secure->scale = scale;
  return task;
}

protocol::KeyRoster roster_for(std::uint64_t round) {
  protocol::KeyRoster roster;
  roster.round = round;
  roster.index = 1;
  return roster;
}

struct Device {
  explicit Device(client::SessionFaults faults = {}, client::SessionSettings settings = {},
                  const weights::Layout& layout = small_layout())
      : session(std::move(settings), identity, layout, holder, randomness,
                [this](const std::string& line) { log.push_back(line); }, std::move(faults)) {}

  // The messages sent since the last call, decoded.
  std::vector<protocol::Envelope> sent() {
    std::vector<protocol::Envelope> out;
    for (auto& frames : session.take_outgoing()) out.push_back(received(std::move(frames)));
    return out;
  }
  template <typename M>
  std::vector<M> sent_of() {
    std::vector<M> out;
    for (const auto& envelope : sent()) {
      if (envelope.type() == M::kType) out.push_back(*protocol::decode<M>(envelope));
    }
    return out;
  }
  bool logged(const std::string& text) const {
    return std::any_of(log.begin(), log.end(), [&](const std::string& line) { return line.find(text) != std::string::npos; });
  }
  void welcome(Clock::time_point now, std::uint64_t heartbeat_ms = 10'000) {
    session.on_message(received(protocol::encode(protocol::Welcome{"test", 0, heartbeat_ms})), now);
  }
  // Answers the session's one train request with `update`.
  void train(std::uint64_t round, std::vector<float> update, Clock::time_point now, double loss = 0.5) {
    auto work = session.take_work();
    REQUIRE(work.size() == 1);
    REQUIRE(std::get<client::TrainRequest>(work[0]).round == round);
    client::TrainingResult result;
    result.update = std::move(update);
    result.samples = 40;
    result.before = {2.0, 0.1, 40};
    result.after = {loss, 0.8, 40};
    session.on_trained(round, std::move(result), 1.5, now);
  }

  crypto::IdentityKeyPair identity = crypto::IdentityKeyPair::generate();
  client::MemoryModelHolder holder;
  client::SystemRoundRandomness randomness;
  std::vector<std::string> log;
  client::DeviceSession session;
};

}  // namespace

TEST_CASE("a session says hello with growing pauses until welcomed, then beats at the server's interval") {
  Device device;
  CHECK(device.session.next_wakeup() == Clock::time_point::max());  // nothing before it starts
  device.session.start(t0);
  CHECK(device.session.next_wakeup() == t0);
  device.session.on_tick(t0);
  auto hellos = device.sent_of<protocol::Hello>();
  REQUIRE(hellos.size() == 1);
  CHECK(hellos[0].model_version == 0);
  CHECK(hellos[0].eligible);
  CHECK(hellos[0].agent_version == client::kAgentVersion);
  // No welcome: again after 1 s, then 2 s, 4 s.
  CHECK(device.session.next_wakeup() == t0 + 1s);
  device.session.on_tick(t0 + 500ms);
  CHECK(device.sent().empty());
  device.session.on_tick(t0 + 1s);
  CHECK(device.sent_of<protocol::Hello>().size() == 1);
  CHECK(device.session.next_wakeup() == t0 + 3s);
  device.session.on_tick(t0 + 3s);
  CHECK(device.sent_of<protocol::Hello>().size() == 1);
  CHECK(device.session.next_wakeup() == t0 + 7s);
  CHECK(device.logged("no welcome from the aggregator yet; saying hello again"));

  device.welcome(t0 + 7s, 2'000);
  CHECK(device.session.welcomed());
  CHECK(device.session.next_wakeup() == t0 + 9s);
  device.session.on_tick(t0 + 9s);
  auto beats = device.sent_of<protocol::Heartbeat>();
  REQUIRE(beats.size() == 1);
  CHECK(beats[0].sequence == 1);
  device.session.on_tick(t0 + 11s);
  CHECK(device.sent_of<protocol::Heartbeat>()[0].sequence == 2);
}

TEST_CASE("a change of eligibility is announced with a fresh hello at the next beat") {
  bool eligible = true;
  client::SessionSettings settings;
  settings.eligible = [&] { return eligible; };
  Device device({}, settings);
  device.session.start(t0);
  device.session.on_tick(t0);
  CHECK(device.sent_of<protocol::Hello>()[0].eligible);
  device.welcome(t0, 1'000);
  eligible = false;
  device.session.on_tick(t0 + 1s);
  auto hellos = device.sent_of<protocol::Hello>();
  REQUIRE(hellos.size() == 1);
  CHECK_FALSE(hellos[0].eligible);
}

TEST_CASE("a train task with the model asks for training, and the update goes out in order with the task's round") {
  Device device;
  device.session.start(t0);
  device.welcome(t0);
  const auto global = model_at(4);
  device.session.on_message(received(with_model(task_for(1, global), global)), t0);
  CHECK(device.session.model_version() == 4);
  REQUIRE(device.holder.model());
  CHECK(device.holder.model()->values()[0] == 0.5f);
  CHECK(device.sent().empty());  // nothing until the training result comes back
  device.train(1, {0.1f, -0.2f, 0.3f}, t0 + 2s);
  auto reports = device.sent_of<protocol::UpdateReport>();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].round == 1);
  CHECK(reports[0].base_version == 4);
  CHECK(reports[0].samples == 40);
  CHECK(reports[0].loss_after == 0.5);
  CHECK(device.session.counters().rounds_trained == 1);
  CHECK(device.logged("round 1: trained on 40 samples in 1.5000 s, loss 2.0000 -> 0.5000"));

  // The same round again is a replay; an older one is stale.
  device.session.on_message(received(protocol::encode(task_for(1, global))), t0 + 3s);
  CHECK(device.session.take_work().empty());
  CHECK(device.session.counters().dropped_messages == 1);
  CHECK(device.logged("train task for round 1, but round 1 was already trained (out of order or replayed)"));
}

TEST_CASE("a task for a model the device lacks, or whose hash differs, is dropped and the model asked for with a hello") {
  Device device;
  device.session.start(t0);
  device.welcome(t0);
  const auto global = model_at(4);
  device.session.on_message(received(protocol::encode(task_for(1, global))), t0);
  CHECK(device.session.take_work().empty());
  CHECK(device.sent_of<protocol::Hello>().size() == 1);
  CHECK(device.logged("came without the model, and this device holds none; saying hello so it is sent"));

  device.holder.adopt(model_at(4, 0.25f));  // version 4, other values
  device.session.on_message(received(protocol::encode(task_for(2, global))), t0 + 1s);
  CHECK(device.session.take_work().empty());
  CHECK(device.holder.model() == nullptr);  // forgotten, so the next task brings it
  CHECK(device.sent_of<protocol::Hello>()[0].model_version == 0);
  CHECK(device.logged("does not have the hash the server announced; asking for the model"));
}

TEST_CASE("a model of another layout or version than the task names is refused, and the held one stays") {
  Device device;
  device.session.start(t0);
  device.holder.adopt(model_at(3));
  auto foreign = *weights::Weights::from_values(*weights::Layout::create({{"v", {2}}}), 4, {1, 2});
  device.session.on_message(received(with_model(task_for(1, model_at(4)), foreign)), t0);
  CHECK(device.logged("train task model has layout"));
  device.session.on_message(received(with_model(task_for(1, model_at(5)), model_at(4))), t0);
  CHECK(device.logged("train task names model version 5 but carries version 4"));
  CHECK(device.session.model_version() == 3);
  CHECK(device.session.take_work().empty());
  CHECK(device.session.counters().dropped_messages == 2);
}

TEST_CASE("training that diverges sends nothing and says why, and a failed training is logged") {
  Device device;
  device.session.start(t0);
  device.welcome(t0);
  const auto global = model_at(1);
  device.session.on_message(received(with_model(task_for(1, global), global)), t0);
  device.train(1, {0.1f, std::numeric_limits<float>::infinity(), 0.0f}, t0 + 1s);
  CHECK(device.sent().empty());
  CHECK(device.session.counters().rounds_diverged == 1);
  CHECK(device.logged("round 1: training diverged, not taking part: update value 1 is inf"));

  device.session.on_message(received(protocol::encode(task_for(2, global))), t0 + 2s);
  REQUIRE(device.session.take_work().size() == 1);
  device.session.on_trained(2, make_error(ErrorCode::invalid_argument, "out of memory"), 0, t0 + 3s);
  CHECK(device.sent().empty());
  CHECK(device.logged("training for round 2 failed: out of memory"));
}

TEST_CASE("a result for a task a later one replaced is ignored") {
  Device device;
  device.session.start(t0);
  const auto global = model_at(1);
  device.session.on_message(received(with_model(task_for(1, global), global)), t0);
  device.session.on_message(received(protocol::encode(task_for(2, global))), t0 + 1s);
  CHECK(device.session.take_work().size() == 2);
  client::TrainingResult stale;
  stale.update = {1, 1, 1};
  stale.samples = 1;
  device.session.on_trained(1, stale, 1, t0 + 2s);
  CHECK(device.sent().empty());
  device.session.on_trained(2, stale, 1, t0 + 2s);
  CHECK(device.sent_of<protocol::UpdateReport>().at(0).round == 2);
}

TEST_CASE("a secure task starts the device's side of SecAgg+, and a roster for another round is dropped") {
  Device device;
  device.session.start(t0);
  const auto global = model_at(1);
  device.session.on_message(received(with_model(secure_task_for(3, global, 1000), global)), t0);
  device.train(3, {0.1f, 0.2f, 0.3f}, t0 + 1s);
  auto adverts = device.sent_of<protocol::AdvertiseKeys>();
  REQUIRE(adverts.size() == 1);
  CHECK(adverts[0].round == 3);
  CHECK(device.session.counters().rounds_trained == 0);  // not until the masked input goes

  device.session.on_message(received(protocol::encode(roster_for(4))), t0 + 2s);
  CHECK(device.sent().empty());
  CHECK(device.logged("a key roster for round 4, which is not this device's open secure round"));
}

TEST_CASE("a device's secure-round draws come from its round's source: equal seeds, equal keys") {
  struct Seeded final : client::RoundRandomness {
    crypto::RandomSource& for_round(std::uint64_t) override { return source; }
    crypto::DeterministicRandom source{crypto::RandomSeed{}};
  };
  auto advertise = [](client::RoundRandomness& randomness, const crypto::IdentityKeyPair& identity) {
    client::MemoryModelHolder holder;
    client::DeviceSession session({}, identity, small_layout(), holder, randomness, [](const std::string&) {});
    const auto global = model_at(1);
    session.on_message(received(with_model(secure_task_for(1, global), global)), t0);
    (void)session.take_work();
    client::TrainingResult result;
    result.update = {0, 0, 0};
    result.samples = 1;
    session.on_trained(1, result, 0, t0);
    auto sent = session.take_outgoing();
    REQUIRE(sent.size() == 1);
    return *protocol::decode<protocol::AdvertiseKeys>(received(std::move(sent[0])));
  };
  const auto identity = crypto::IdentityKeyPair::generate();
  Seeded a, b;
  client::SystemRoundRandomness system;
  CHECK(advertise(a, identity).mask_key == advertise(b, identity).mask_key);
  CHECK(advertise(system, identity).mask_key != advertise(system, identity).mask_key);
}

TEST_CASE("a device that drops out before sharing keys sends nothing more for the round") {
  client::SessionFaults faults;
  faults.drop_out = [](std::uint64_t round) {
    return round == 3 ? client::DropPoint::before_sharing : client::DropPoint::none;
  };
  Device device(faults);
  device.session.start(t0);
  const auto global = model_at(1);
  device.session.on_message(received(with_model(secure_task_for(3, global), global)), t0);
  device.train(3, {0.1f, 0.2f, 0.3f}, t0 + 1s);
  REQUIRE(device.sent_of<protocol::AdvertiseKeys>().size() == 1);
  device.session.on_message(received(protocol::encode(roster_for(3))), t0 + 2s);
  CHECK(device.sent().empty());
  CHECK(device.logged("round 3: dropping out of the round (simulated)"));
}

TEST_CASE("an evaluate task asks for an evaluation, and its report names the round and version") {
  Device device;
  device.session.start(t0);
  const auto global = model_at(6);
  device.session.on_message(received(with_model(protocol::EvaluateTask{2, 6, 1000}, global)), t0);
  auto work = device.session.take_work();
  REQUIRE(work.size() == 1);
  const auto request = std::get<client::EvaluateRequest>(work[0]);
  CHECK(request.model_version == 6);
  device.session.on_evaluated(request, client::Evaluation{0.4, 0.9, 100}, t0 + 1s);
  auto reports = device.sent_of<protocol::EvaluationReport>();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].round == 2);
  CHECK(reports[0].model_version == 6);
  CHECK(reports[0].samples == 100);
  CHECK(device.session.counters().evaluations == 1);
  device.session.on_message(received(protocol::encode(protocol::EvaluateTask{2, 6, 1000})), t0 + 2s);
  CHECK(device.session.take_work().empty());  // replayed
}

TEST_CASE("a lost connection or an unknown-device refusal brings a fresh hello, and garbage is counted and dropped") {
  Device device;
  device.session.start(t0);
  device.session.on_tick(t0);
  (void)device.sent();
  device.welcome(t0);
  device.session.on_disconnected(t0 + 5s);
  CHECK_FALSE(device.session.welcomed());
  CHECK(device.logged("lost the connection to the aggregator; redialling"));
  device.session.on_tick(t0 + 5s);
  CHECK(device.sent_of<protocol::Hello>().size() == 1);

  device.welcome(t0 + 6s);
  device.session.on_message(received(protocol::encode(protocol::Refusal{"unknown device", "say hello"})), t0 + 7s);
  CHECK(device.session.next_wakeup() == t0 + 7s);
  device.session.on_tick(t0 + 7s);
  CHECK(device.sent_of<protocol::Hello>().size() == 1);

  device.session.on_undecodable(protocol::DecodeError{protocol::DecodeFault::malformed, "header", "not msgpack"});
  device.session.on_message(received(protocol::encode(protocol::Heartbeat{1})), t0 + 8s);
  CHECK(device.session.counters().dropped_messages == 2);
  CHECK(device.logged("dropped a message from the aggregator: unexpected heartbeat"));
}

TEST_CASE("hold_updates_from_round trains but keeps the update") {
  client::SessionFaults faults;
  faults.hold_updates_from_round = 2;
  Device device(faults);
  device.session.start(t0);
  const auto global = model_at(1);
  device.session.on_message(received(with_model(task_for(1, global), global)), t0);
  device.train(1, {0, 0, 0}, t0);
  CHECK(device.sent_of<protocol::UpdateReport>().size() == 1);
  device.session.on_message(received(protocol::encode(task_for(2, global))), t0 + 1s);
  device.train(2, {0, 0, 0}, t0 + 1s);
  CHECK(device.sent().empty());
  CHECK(device.logged("round 2: trained; holding the update (debug.hold_updates_from_round)"));
}

TEST_CASE("tensors a train task keeps local never leave the device: their update values go out as zeros") {
  const auto layout = *weights::Layout::create(
      {{"w", {2}}, {"bn.running_mean", {2}, weights::DType::float32, weights::TensorKind::buffer}});
  Device device({}, {}, layout);
  device.session.start(t0);
  device.welcome(t0);
  const auto global = *weights::Weights::from_values(layout, 4, {0.5f, 0.5f, 0.0f, 0.0f});
  auto task = task_for(1, global);
  task.local_tensors = {1};
  device.session.on_message(received(with_model(task, global)), t0);
  auto work = device.session.take_work();
  REQUIRE(work.size() == 1);
  CHECK(std::get<client::TrainRequest>(work[0]).local_tensors == std::vector<std::uint64_t>{1});
  client::TrainingResult result;
  result.update = {0.1f, 0.2f, 3.0f, -4.0f};
  result.samples = 40;
  device.session.on_trained(1, std::move(result), 1.0, t0 + 1s);
  const auto sent = device.sent();
  REQUIRE(sent.size() == 1);
  REQUIRE(sent[0].type() == protocol::MessageType::update_report);
  const auto payload = sent[0].payload(0);
  std::vector<float> values(payload.size() / sizeof(float));
  std::memcpy(values.data(), payload.data(), payload.size());
  CHECK(values == std::vector<float>{0.1f, 0.2f, 0.0f, 0.0f});

  // An index beyond the model's tensors is a task to drop, not to train.
  auto beyond = task_for(2, global);
  beyond.local_tensors = {1, 2};
  device.session.on_message(received(protocol::encode(beyond)), t0 + 2s);
  CHECK(device.session.take_work().empty());
  CHECK(device.logged("keeps tensor 2 local, but the model has 2 tensors"));
}
