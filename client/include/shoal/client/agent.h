// Agent: the socket driver of a DeviceSession, as `shoal-agent run` runs it.
//
// It connects a CurveZMQ DEALER socket to the aggregator (libzmq redials
// lost connections by itself), feeds the session every decoded message,
// every lost connection and the passing of time, sends what the session
// queues, and does the work it asks for on this thread: training on the
// local data, evaluation on the held-out data. The latest global model is
// kept in <state_dir>/model.weights (written atomically, once the task's
// answer is on its way), so a restart and `shoal-agent predict` use it. A
// handshake the server refuses (the device is not enrolled) is logged with
// what to do; the agent keeps redialling, so enrolling it later works.
// Randomness comes from the operating system; nothing here can seed it.
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
#include "shoal/client/device_session.h"
#include "shoal/client/eligibility.h"
#include "shoal/client/fault_injection.h"
#include "shoal/client/local_tensors.h"
#include "shoal/client/model_holder.h"
#include "shoal/crypto/identity.h"
#include "shoal/inference/model.h"
#include "shoal/protocol/limits.h"
#include "shoal/protocol/release_messages.h"

namespace shoal::client {

struct AgentOptions {
  std::string name = "agent";  // for log lines
  std::string endpoint;        // "tcp://aggregator.example:7400"
  std::optional<crypto::PublicIdentity> server;  // the aggregator's key; required
  std::filesystem::path state_dir;  // keeps model.weights; empty: keep nothing on disk
  EligibilityRules eligibility;
  std::chrono::milliseconds max_hello_backoff{30'000};
  // Identity keys a secure round's neighbours may have (the fleet's
  // enrolment list, distributed to devices); unset: any key the server relays.
  std::optional<TrustedPeers> trusted_peers;
  // Called on the agent's thread with each new global model, once it is on disk.
  std::function<void(const weights::Weights&)> on_global_model;
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
  // `faults` is for tests and benchmarks (fault_injection.h).
  static Result<std::unique_ptr<Agent>> create(AgentOptions options, const crypto::IdentityKeyPair& identity,
                                               inference::Model model, Dataset train, Dataset held_out, LogSink log,
                                               AgentFaults faults = {});
  ~Agent();

  // Serves the aggregator until `stop` is set.
  void run(const std::atomic<bool>& stop);

  // Queues a health report for the aggregator (release_health.h). The
  // agent's thread adds the accuracy of the active release model on the
  // held-out data, if it has both, and sends it. Thread-safe.
  void queue_health_report(protocol::HealthReport report);
  std::uint64_t health_reports_sent() const { return health_reports_sent_.load(); }

  // The version of the global model held (0: none yet).
  std::uint64_t model_version() const { return session_->model_version(); }
  AgentCounters counters() const;

  // The file in `state_dir` that holds the latest global model.
  static std::filesystem::path model_path(const std::filesystem::path& state_dir) {
    return state_dir / "model.weights";
  }
  // The file in `state_dir` that holds the device's own values of the
  // tensors its federation keeps local (FedBN; local_tensors.h).
  static std::filesystem::path local_tensors_path(const std::filesystem::path& state_dir) {
    return state_dir / "local-tensors.weights";
  }

 private:
  Agent(AgentOptions options, const crypto::IdentityKeyPair& identity, inference::Model model, Dataset train,
        Dataset held_out, LogSink log, AgentFaults faults);
  void check_monitor(Clock::time_point now);
  // Does the work the session asked for and hands it the results.
  void do_work();
  Result<TrainingResult> train_on_global(const TrainRequest& request);
  Result<Evaluation> evaluate_global();
  // Loads the global model, with this device's own values of its local tensors.
  Status load_global(std::span<const std::uint64_t> local_tensors);
  void send_outgoing();
  void announce_global_model();
  void keep_update(std::uint64_t round, const std::vector<float>& update);
  void send_health_reports();
  // The active release's accuracy on the held-out data, into `report`.
  void add_release_accuracy(protocol::HealthReport& report);

  AgentOptions options_;
  crypto::IdentityKeyPair identity_;
  inference::Model model_;
  Dataset train_;
  Dataset held_out_;
  LogSink log_;
  AgentFaults faults_;
  FileModelHolder holder_;
  LocalValues local_;
  SystemRoundRandomness randomness_;
  std::unique_ptr<DeviceSession> session_;
  protocol::Limits limits_;
  zmq::context_t context_;
  std::optional<zmq::socket_t> socket_;
  std::optional<zmq::socket_t> monitor_;  // handshake events of socket_
  std::uint64_t refused_handshakes_ = 0;
  std::uint64_t announced_version_ = 0;  // the last version given to on_global_model
  std::mutex health_mutex_;
  std::vector<protocol::HealthReport> health_reports_;  // queued, at most kMaxQueuedHealthReports
  std::atomic<std::uint64_t> health_reports_sent_{0};
};

}  // namespace shoal::client
