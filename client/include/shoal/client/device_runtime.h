// DeviceRuntime: the one owner of a device's models.
//
//  - the release store (<state_dir>/release/models: the active and the
//    previous verified release), changed by install_release() and
//    roll_back(), or by another process (`shoal-agent update` against the
//    same state directory), which refresh() notices;
//  - the latest global model from rounds (<state_dir>/model.weights), which
//    the Agent hands over through on_global_model();
//  - the local inference service, which answers from one of the two:
//    [serve] model = "release" (the default: signed, verified releases
//    only) or "latest-global";
//  - the Agent, whose DeviceSession takes part in rounds, when run() is
//    given one.
//
// Each event that changes the model served loads it into a fresh model
// instance, probes it, and only then swaps it into the service, so a
// failed load leaves the previous version serving. A new global model is
// loaded on run()'s serving thread, not on the agent's: the agent only
// hands it over, and a later one replaces one not loaded yet.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "shoal/base/result.h"
#include "shoal/client/agent.h"
#include "shoal/client/agent_config.h"
#include "shoal/client/release_update.h"
#include "shoal/serving/inference_service.h"

namespace shoal::client {

struct RuntimeOptions {
  std::filesystem::path state_dir;
  std::string model;  // zoo name or TorchScript file, as [model] name
  ServeSettings serve;  // serve.enabled false: no HTTP service
  // Serve in this process even without [serve]: predict() answers, and no
  // HTTP is served unless [serve] is on (an app linking the agent).
  bool in_process = false;
  // Release checks that run() makes every check_every_s (empty repository: none).
  std::optional<ReleaseUpdateOptions> releases;
  int check_every_s = 0;
  LogSink log;
  // With an agent: a health report to the aggregator after each release
  // check that installed, failed or rolled back, and every report_every_s.
  int report_every_s = 0;
};

class DeviceRuntime {
 public:
  // Starts the inference service (if enabled) and serves what the state
  // directory holds now, if anything.
  static Result<std::unique_ptr<DeviceRuntime>> start(RuntimeOptions options);
  ~DeviceRuntime();

  // Installs the newest release (release_update.h); a new active release is served at once.
  Result<updater::InstallOutcome> install_release(const ReleaseUpdateOptions& options);
  // Makes the previous release active again and serves it; returns its version.
  Result<std::uint64_t> roll_back();
  // A new global model from a round (the Agent's on_global_model). Keeps
  // it for the next refresh(), which run() makes at once, and returns.
  void on_global_model(const weights::Weights& model);
  // Serves the global model handed over since the last look, or what the
  // state directory names now, if it changed since the last look.
  Status refresh();

  // Runs until `stop`: the agent's rounds on this thread (when `agent` is
  // given), release checks every check_every_s with health reports through
  // the agent, and a look at the state directory every second.
  void run(const std::atomic<bool>& stop, Agent* agent = nullptr);

  // The served model's outputs for `samples` samples, in this process
  // (with [serve] on or `in_process`). Thread-safe.
  Result<serving::BatchAnswer, serving::PredictError> predict(std::span<const float> inputs, std::size_t samples);

  // Null when serving is off.
  serving::InferenceService* service() { return service_.get(); }
  // The release (or global model) version served; nullopt when none.
  std::optional<std::uint64_t> served_version() const;

 private:
  explicit DeviceRuntime(RuntimeOptions options) : options_(std::move(options)) {}
  // Serves the active release if it is not the one served already.
  Status serve_active_release();
  Status serve_weights(const weights::Weights& weights, serving::SwapCause cause, const std::string& key);
  // Waits up to `duration` for a global model to be handed over, or for `stop`.
  void wait_for_global_model(const std::atomic<bool>& stop, std::chrono::milliseconds duration);

  RuntimeOptions options_;
  std::unique_ptr<serving::InferenceService> service_;
  mutable std::mutex swap_mutex_;  // one load and swap at a time
  std::string served_key_;    // the file (and version) served, to tell a change
  std::optional<std::uint64_t> served_version_;
  std::optional<std::string> previous_release_;  // what the store named as previous when it was last served

  // The global model handed over and not served yet, with the key of its file then.
  std::mutex pending_mutex_;
  std::condition_variable pending_ready_;
  std::optional<weights::Weights> pending_global_;
  std::string pending_key_;
};

}  // namespace shoal::client
