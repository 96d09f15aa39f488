// Agent: the device side of federated rounds, as `shoal-agent run` and the
// simulator run it.
//
// It connects a CurveZMQ DEALER socket to the aggregator and says hello
// (again, with growing pauses, until welcomed; libzmq redials lost
// connections by itself). Once welcomed it sends heartbeats, trains on its
// local data when a train task names it, answers evaluation tasks from its
// held-out data, and keeps the latest global model on disk (written
// atomically) so that a restart and `shoal-agent predict` use it. Anything
// malformed, stale or out of order from the server is logged and dropped.
// A handshake the server refuses (the device is not enrolled) is logged
// with what to do; the agent keeps redialling, so enrolling it later works.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "shoal/client/dataset.h"
#include "shoal/client/eligibility.h"
#include "shoal/client/secure_aggregation_client.h"
#include "shoal/client/trainer.h"
#include "shoal/crypto/hash.h"
#include "shoal/crypto/identity.h"
#include "shoal/inference/model.h"
#include "shoal/protocol/envelope.h"
#include "shoal/protocol/limits.h"
#include "shoal/protocol/round_messages.h"

namespace shoal::client {

using LogSink = std::function<void(const std::string& line)>;

// Where a device stops answering in a round (fault injection for simulated
// fleets): before its update (in secure mode, before advertising keys),
// before sharing keys, before its masked input, before unmasking.
enum class DropPoint { none, before_report, before_sharing, before_input, before_unmasking };

struct AgentOptions {
  std::string name = "agent";  // for log lines
  std::string endpoint;        // "tcp://aggregator.example:7400"
  std::optional<crypto::PublicIdentity> server;  // the aggregator's key; required
  std::filesystem::path state_dir;  // keeps model.weights; empty: keep nothing on disk
  EligibilityRules eligibility;
  std::chrono::milliseconds max_hello_backoff{30'000};
  // Simulations share one machine among many agents: training takes this
  // lock so one agent at a time uses every core. Null on a real device.
  std::mutex* compute_gate = nullptr;
  // For tests and audits: write each update sent, and the model it was
  // trained from, to <state_dir>/updates/ (round-<N>.update, base-v<K>.weights).
  bool keep_updates = false;
  // For fault-injection tests: from round N on, train but never send the
  // update (in secure mode: share keys, then never send the masked input),
  // so a test can kill the agent at a known point mid-round. 0: off.
  std::uint64_t hold_updates_from_round = 0;
  // Identity keys a secure round's neighbours may have (the fleet's
  // enrolment list, distributed to devices); unset: any key the server relays.
  std::optional<TrustedPeers> trusted_peers;
  // For simulations: where, if anywhere, the device drops out of a round.
  std::function<DropPoint(std::uint64_t round)> drop_out;
  // For round-overhead benchmarks: answer each train task at once with an
  // all-zero update, training nothing, so a round costs only its messages.
  bool zero_update = false;
};

struct AgentCounters {
  std::uint64_t rounds_trained = 0;
  std::uint64_t rounds_diverged = 0;  // trained to a non-finite loss or update: nothing sent
  std::uint64_t evaluations = 0;
  std::uint64_t dropped_messages = 0;  // malformed, stale or out of order
  std::uint64_t refused_handshakes = 0;
};

class Agent {
 public:
  // `held_out` may be empty: evaluation tasks then use the training data.
  static Result<std::unique_ptr<Agent>> create(AgentOptions options, const crypto::IdentityKeyPair& identity,
                                               inference::Model model, Dataset train, Dataset held_out, LogSink log);
  ~Agent();

  // Serves the aggregator until `stop` is set.
  void run(const std::atomic<bool>& stop);

  // The version of the global model held (0: none yet).
  std::uint64_t model_version() const { return global_ ? global_->version() : 0; }
  AgentCounters counters() const { return counters_; }

  // The file in `state_dir` that holds the latest global model.
  static std::filesystem::path model_path(const std::filesystem::path& state_dir) {
    return state_dir / "model.weights";
  }

 private:
  Agent(AgentOptions options, const crypto::IdentityKeyPair& identity, inference::Model model, Dataset train,
        Dataset held_out, LogSink log);
  void say_hello();
  void handle(protocol::Envelope& envelope);
  void check_monitor();
  bool adopt_model(std::span<const std::uint8_t> payload, std::uint64_t expected_version, const char* what);
  void keep_model_on_disk();  // writes a newly adopted model to state_dir
  // True when the task's model version is the one held; otherwise drops the
  // task and says hello, so the aggregator sends the model with the next.
  bool holds_version(std::uint64_t version, const char* what);
  // Puts the global model into the network, holding the compute gate (if
  // any) until the returned lock is released; nullopt if it cannot load.
  std::optional<std::unique_lock<std::mutex>> load_global_model();
  void train_round(const protocol::TrainTask& task);
  void evaluate_round(const protocol::EvaluateTask& task);
  void send_update(const protocol::TrainTask& task, TrainingResult& result);
  // Secure mode: privatise, quantise and advertise keys; then one step per server message.
  void start_secure_round(const protocol::TrainTask& task, TrainingResult& result);
  // Decodes an M and hands it to `handler`, or drops the message.
  template <typename M>
  void decode_then(const protocol::Envelope& envelope, void (Agent::*handler)(const M&));
  void on_key_roster(const protocol::KeyRoster& roster);
  void on_share_bundle(const protocol::ShareBundle& bundle);
  void on_unmask_request(const protocol::UnmaskRequest& request);
  // True (and the round's secrets wiped) when the device drops out here.
  bool drops_at(DropPoint point, std::uint64_t round);
  bool expects_secure(std::uint64_t round, const char* what);
  void drop(const std::string& why);
  void send(std::vector<zmq::message_t> frames);
  void keep_update(std::uint64_t round, const std::vector<float>& update);

  AgentOptions options_;
  crypto::IdentityKeyPair identity_;
  inference::Model model_;
  Dataset train_;
  Dataset held_out_;
  LogSink log_;
  std::optional<weights::Weights> global_;
  std::optional<crypto::Blake2b256Digest> global_hash_;  // of global_'s values, once asked for
  bool model_unsaved_ = false;  // global_ is newer than the copy in state_dir
  protocol::Limits limits_;
  zmq::context_t context_;
  std::optional<zmq::socket_t> socket_;
  std::optional<zmq::socket_t> monitor_;  // handshake events of socket_
  bool welcomed_ = false;
  bool eligible_ = false;
  std::chrono::milliseconds heartbeat_interval_{10'000};
  std::chrono::milliseconds hello_backoff_{1'000};
  std::chrono::steady_clock::time_point next_hello_;
  std::chrono::steady_clock::time_point next_heartbeat_;
  std::uint64_t heartbeat_sequence_ = 0;
  std::uint64_t last_round_ = 0;       // the latest round trained, to drop replays and stale tasks
  std::uint64_t last_evaluation_ = 0;
  AgentCounters counters_;
  std::unique_ptr<SecureAggregationClient> secure_;  // the open secure round's state, if any
  DropPoint drop_point_ = DropPoint::none;  // where the current round is left, if anywhere
  double secure_loss_after_ = 0, secure_accuracy_after_ = 0;
};

// The agent's plan from the server's: field by field, then validated.
Result<TrainingPlan> training_plan_from_wire(const protocol::WirePlan& wire);

}  // namespace shoal::client
