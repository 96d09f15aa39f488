// DeviceSession: a device's side of federated rounds, as a pure state machine.
//
// It is fed what happens to the device - it starts, its connection drops, a
// message from the aggregator arrives (already decoded into an envelope),
// work it asked for finishes, time passes - and answers with what to do:
// messages to send (encoded, in order), the time it next wants to be woken,
// and work requests (train, evaluate) whose results the driver feeds back.
// It never touches a socket, a thread, the clock or a file: the model it
// holds lives in a ModelHolder and its randomness comes from a
// RoundRandomness, both supplied by the driver. client::Agent drives one
// over a CurveZMQ socket; the fleet engine drives thousands in virtual time.
//
// What it does: says hello (again, with growing pauses, until welcomed, and
// again after a lost connection or an "unknown device" refusal); once
// welcomed, sends heartbeats, and announces a change of eligibility with a
// fresh hello. A train task (with the model, when the device is behind)
// asks for training once the held model has the version and hash the task
// names; otherwise the task is dropped and a hello asks for the model. A
// finished training sends the update in parts, or in secure mode runs the
// device's side of SecAgg+ (advertise, share, mask, unmask; its secrets are
// wiped when the round ends for it). Training that diverged sends nothing.
// An evaluate task asks for an evaluation and reports it. Anything
// malformed, stale or out of order is logged, counted and dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <zmq.hpp>

#include "shoal/client/fault_injection.h"
#include "shoal/client/model_holder.h"
#include "shoal/client/secure_aggregation_client.h"
#include "shoal/client/trainer.h"
#include "shoal/crypto/identity.h"
#include "shoal/crypto/random_source.h"
#include "shoal/protocol/envelope.h"
#include "shoal/protocol/round_messages.h"
#include "shoal/weights/layout.h"

namespace shoal::client {

using Clock = std::chrono::steady_clock;
using LogSink = std::function<void(const std::string& line)>;
// One encoded message: the envelope's frames.
using Frames = std::vector<zmq::message_t>;

inline constexpr const char* kAgentVersion = "shoal-agent 0.1.0";

// Where a device's secret randomness comes from, round by round.
class RoundRandomness {
 public:
  virtual ~RoundRandomness() = default;
  // The source of everything the device draws for `round` (mask keys and
  // seeds, noise, quantiser rounding); it stays valid until the next call.
  virtual crypto::RandomSource& for_round(std::uint64_t round) = 0;
};

// The operating system's randomness for every round: what a real device uses.
class SystemRoundRandomness final : public RoundRandomness {
 public:
  crypto::RandomSource& for_round(std::uint64_t) override { return crypto::system_random(); }
};

// Work the session asks its driver to do, on the model held now.
struct TrainRequest {
  std::uint64_t round = 0;
  TrainingPlan plan;
  // FedBN: the tensors to train with the device's own values (local_tensors.h);
  // the session zeroes them in the update.
  std::vector<std::uint64_t> local_tensors;
};
struct EvaluateRequest {
  std::uint64_t round = 0;
  std::uint64_t model_version = 0;
};
using WorkRequest = std::variant<TrainRequest, EvaluateRequest>;

struct SessionSettings {
  std::string server = "the aggregator";  // how log lines name it (its endpoint)
  std::string model = "model";            // how log lines name the device's model (its zoo name)
  std::chrono::milliseconds max_hello_backoff{30'000};
  // Whether the device may train now (on mains power, idle); asked at each
  // hello and heartbeat. Null: always.
  std::function<bool()> eligible;
  // Identity keys a secure round's neighbours may have; null: any key the
  // server relays. It must outlive the session.
  const TrustedPeers* trusted_peers = nullptr;
};

struct SessionCounters {
  std::uint64_t rounds_trained = 0;
  std::uint64_t rounds_diverged = 0;  // trained to a non-finite loss or update: nothing sent
  std::uint64_t evaluations = 0;
  std::uint64_t dropped_messages = 0;  // malformed, stale or out of order
};

class DeviceSession {
 public:
  // `layout` is the device model's; `identity`, `holder` and `randomness`
  // must outlive the session.
  DeviceSession(SessionSettings settings, const crypto::IdentityKeyPair& identity, weights::Layout layout,
                ModelHolder& holder, RoundRandomness& randomness, LogSink log, SessionFaults faults = {});
  ~DeviceSession();
  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;

  // The device starts (or comes online): it says hello now.
  void start(Clock::time_point now);
  // The connection to the aggregator was lost: once welcomed, this logs it
  // and says hello again at once (the transport queues it until it redials).
  void on_disconnected(Clock::time_point now);
  // A message from the aggregator.
  void on_message(const protocol::Envelope& envelope, Clock::time_point now);
  // A message from the aggregator that could not be decoded: counted and logged.
  void on_undecodable(const protocol::DecodeError& error);
  // The result of a TrainRequest; `seconds` is how long it took, for the log.
  void on_trained(std::uint64_t round, Result<TrainingResult> result, double seconds, Clock::time_point now);
  // The result of an EvaluateRequest.
  void on_evaluated(const EvaluateRequest& request, Result<Evaluation> evaluation, Clock::time_point now);
  // Time passed: hellos and heartbeats that are due go out.
  void on_tick(Clock::time_point now);

  // When on_tick next has something to do (Clock::time_point::max(): never).
  Clock::time_point next_wakeup() const;
  // Messages to send, in order, since the last call.
  std::vector<Frames> take_outgoing() { return std::exchange(outbox_, {}); }
  // Work asked for since the last call, in order.
  std::vector<WorkRequest> take_work() { return std::exchange(work_, {}); }

  // The version of the global model held (0: none yet).
  std::uint64_t model_version() const;
  SessionCounters counters() const { return counters_; }
  bool welcomed() const { return welcomed_; }

 private:
  void say_hello();
  void send(Frames frames) { outbox_.push_back(std::move(frames)); }
  void drop(const std::string& why);
  bool adopt_model(std::span<const std::uint8_t> payload, std::uint64_t expected_version, const char* what);
  // True when the task's model version is the one held; otherwise drops the
  // task and says hello, so the aggregator sends the model with the next.
  bool holds_version(std::uint64_t version, const char* what);
  void on_welcome(const protocol::Welcome& welcome, Clock::time_point now);
  void on_train_task(const protocol::TrainTask& task);
  void on_evaluate_task(const protocol::EvaluateTask& task);
  void on_refusal(const protocol::Refusal& refusal, Clock::time_point now);
  void send_update(const protocol::TrainTask& task, TrainingResult& result);
  // Secure mode: privatise, quantise and advertise keys; then one step per server message.
  void start_secure_round(const protocol::TrainTask& task, TrainingResult& result);
  void on_key_roster(const protocol::KeyRoster& roster);
  void on_share_bundle(const protocol::ShareBundle& bundle);
  void on_unmask_request(const protocol::UnmaskRequest& request);
  // True (and the round's secrets wiped) when the device drops out here.
  bool drops_at(DropPoint point, std::uint64_t round);
  bool expects_secure(std::uint64_t round, const char* what);

  SessionSettings settings_;
  const crypto::IdentityKeyPair& identity_;
  weights::Layout layout_;
  ModelHolder& holder_;
  RoundRandomness& randomness_;
  LogSink log_;
  SessionFaults faults_;
  std::vector<Frames> outbox_;
  std::vector<WorkRequest> work_;
  bool started_ = false;
  bool welcomed_ = false;
  bool eligible_ = false;
  std::chrono::milliseconds heartbeat_interval_{10'000};
  std::chrono::milliseconds hello_backoff_{1'000};
  Clock::time_point next_hello_{};
  Clock::time_point next_heartbeat_{};
  std::uint64_t heartbeat_sequence_ = 0;
  std::uint64_t last_round_ = 0;  // the latest round trained, to drop replays and stale tasks
  std::uint64_t last_evaluation_ = 0;
  std::optional<protocol::TrainTask> training_;  // the task whose training is under way
  SessionCounters counters_;
  std::unique_ptr<SecureAggregationClient> secure_;  // the open secure round's state, if any
  DropPoint drop_point_ = DropPoint::none;  // where the current round is left, if anywhere
  double secure_loss_after_ = 0, secure_accuracy_after_ = 0;
};

// The device's training plan from the server's: field by field, then validated.
Result<TrainingPlan> training_plan_from_wire(const protocol::WirePlan& wire);

}  // namespace shoal::client
