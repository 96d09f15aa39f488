#include "shoal/client/device_runtime.h"

#include <thread>

#include "shoal/client/local_tensors.h"
#include "shoal/client/release_health.h"
#include "shoal/updater/model_store.h"
#include "shoal/updater/release_installer.h"
#include "shoal/weights/weights_file.h"

namespace shoal::client {
namespace {

namespace fs = std::filesystem;

// Sleeps `duration` in short steps, returning early once `stop` is set.
void sleep_unless_stopped(const std::atomic<bool>& stop, std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (!stop.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::min(duration, std::chrono::milliseconds(100)));
  }
}

// What tells a change of the global model's file without reading it.
std::string file_key(const fs::path& file) {
  std::error_code error;
  const auto size = fs::file_size(file, error);
  if (error) return {};
  const auto written = fs::last_write_time(file, error);
  if (error) return {};
  return "global:" + std::to_string(size) + ":" + std::to_string(written.time_since_epoch().count());
}

const char* cause_words(serving::SwapCause cause) {
  switch (cause) {
    case serving::SwapCause::install: return "installed";
    case serving::SwapCause::rollback: return "rolled back to";
    case serving::SwapCause::global_model: return "new global model";
    case serving::SwapCause::load: return "loaded";
  }
  return "";
}

}  // namespace

Result<std::unique_ptr<DeviceRuntime>> DeviceRuntime::start(RuntimeOptions options) {
  std::unique_ptr<DeviceRuntime> runtime(new DeviceRuntime(std::move(options)));
  auto& serve = runtime->options_.serve;
  if (serve.enabled || runtime->options_.in_process) {
    auto service_options = serve.service;
    service_options.listen = serve.enabled;
    if (!serve.token_file.empty()) {
      auto token = serving::read_bearer_token(serve.token_file);
      if (!token) return make_error(token.error().code, "serve.token_file: " + token.error().message);
      service_options.bearer_token = std::move(token).value();
    }
    auto service = serving::InferenceService::start(std::move(service_options));
    if (!service) return make_error(service.error().code, "serve: " + service.error().message);
    runtime->service_ = std::move(service).value();
    if (serve.enabled && runtime->options_.log) {
      runtime->options_.log("serving apps at " + runtime->service_->addresses() + " (Open Inference Protocol v2) from " +
                            (serve.source == ServeSource::release ? "the active release" : "the latest global model"));
    }
  }
  if (auto status = runtime->refresh(); !status && runtime->options_.log) {
    runtime->options_.log("nothing served yet: " + status.error().message);
  }
  return runtime;
}

DeviceRuntime::~DeviceRuntime() = default;

Result<serving::BatchAnswer, serving::PredictError> DeviceRuntime::predict(std::span<const float> inputs,
                                                                           std::size_t samples) {
  if (!service_) {
    return serving::PredictError{serving::PredictFailure::not_loaded,
                                 "this runtime serves nothing: [serve] is off and it was not started in-process"};
  }
  return service_->predict(inputs, samples);
}

std::optional<std::uint64_t> DeviceRuntime::served_version() const {
  std::lock_guard lock(swap_mutex_);
  return served_version_;
}

Status DeviceRuntime::serve_weights(const weights::Weights& weights, serving::SwapCause cause, const std::string& key) {
  auto model = inference::Model::open(options_.model, 0);
  if (!model) return model.error();
  const bool global = options_.serve.source == ServeSource::latest_global;
  // A global model is served as the device evaluates it: with its own values of the tensors its federation
  // keeps local (FedBN), when it has them. A release is the operator's model, served as signed.
  std::optional<weights::Weights> personal;
  if (global) {
    auto local = read_local_values(Agent::local_tensors_path(options_.state_dir), weights.layout());
    if (!local) return make_error(local.error().code, "the device's local tensors: " + local.error().message);
    if (!local->empty()) {
      personal = weights;
      overlay_local(*local, local->tensors, *personal);
    }
  }
  auto served = serving::ServedModel::load(std::move(model).value(), personal ? *personal : weights,
                                           global ? "latest-global" : "release", options_.serve.name);
  if (!served) return served.error();
  const std::string name = (*served)->info().name;
  service_->serve(std::move(served).value(), cause);
  served_key_ = key;
  served_version_ = weights.version();
  if (options_.log) {
    options_.log("serving " + name + " version " + std::to_string(weights.version()) + " (" + cause_words(cause) + ")");
  }
  return ok_status();
}

Status DeviceRuntime::serve_active_release() {
  const auto dir = updater::release_models_dir(options_.state_dir);
  if (!fs::exists(dir / "CURRENT")) return ok_status();
  auto store = updater::ModelStore::open(dir);
  if (!store) return store.error();
  if (!store->active()) return ok_status();
  const std::string key = "release:" + *store->active();
  if (key == served_key_) return ok_status();
  auto weights = store->load_active();
  if (!weights) return weights.error();
  if (!*weights) return ok_status();
  // Back to a version this device turned away from the one served: a rollback.
  const bool rollback = served_version_ && store->rolled_back() && *store->rolled_back() == *served_version_;
  const auto cause = served_key_.empty() ? serving::SwapCause::load
                     : rollback          ? serving::SwapCause::rollback
                                         : serving::SwapCause::install;
  return serve_weights(**weights, cause, key);
}

Status DeviceRuntime::refresh() {
  if (!service_) return ok_status();
  std::lock_guard lock(swap_mutex_);
  if (options_.serve.source == ServeSource::release) return serve_active_release();
  const auto cause = served_key_.empty() ? serving::SwapCause::load : serving::SwapCause::global_model;
  std::optional<weights::Weights> handed_over;
  std::string handed_key;
  {
    std::lock_guard pending(pending_mutex_);
    handed_over.swap(pending_global_);
    handed_key = std::move(pending_key_);
  }
  if (handed_over) {
    auto status = serve_weights(*handed_over, cause, handed_key);
    if (!status) {
      return make_error(status.error().code, "the global model version " + std::to_string(handed_over->version()) +
                                                 " was not served: " + status.error().message);
    }
    return status;
  }
  const auto file = Agent::model_path(options_.state_dir);
  const std::string key = file_key(file);
  if (key.empty() || key == served_key_) return ok_status();
  auto weights = weights::read_weights_file(file);
  if (!weights) return weights.error();
  return serve_weights(*weights, cause, key);
}

Result<updater::InstallOutcome> DeviceRuntime::install_release(const ReleaseUpdateOptions& options) {
  auto outcome = update_from_release(options);
  if (outcome && outcome->installed) {
    if (auto status = refresh(); !status) return make_error(status.error().code, "serving: " + status.error().message);
  }
  return outcome;
}

Result<std::uint64_t> DeviceRuntime::roll_back() {
  auto version = roll_back_release(options_.state_dir);
  if (!version) return version;
  if (auto status = refresh(); !status) return make_error(status.error().code, "serving: " + status.error().message);
  return version;
}

void DeviceRuntime::on_global_model(const weights::Weights& model) {
  if (!service_ || options_.serve.source != ServeSource::latest_global) return;
  const std::string key = file_key(Agent::model_path(options_.state_dir));
  {
    std::lock_guard lock(pending_mutex_);
    pending_global_ = model;
    pending_key_ = key.empty() ? "global:v" + std::to_string(model.version()) : key;
  }
  pending_ready_.notify_one();
}

void DeviceRuntime::wait_for_global_model(const std::atomic<bool>& stop, std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  std::unique_lock lock(pending_mutex_);
  // `stop` is set without a notification, so the wait looks at it every 100 ms.
  while (!stop.load() && !pending_global_) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return;
    pending_ready_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(100)));
  }
}

void DeviceRuntime::run(const std::atomic<bool>& stop, Agent* agent) {
  std::thread release_checks;
  if (options_.releases && options_.check_every_s > 0) {
    release_checks = std::thread([this, &stop, agent] {
      using std::chrono::steady_clock;
      const auto check_every = std::chrono::seconds(options_.check_every_s);
      const auto report_every = std::chrono::seconds(options_.report_every_s);
      const bool reports = agent != nullptr && options_.report_every_s > 0;
      auto next_check = steady_clock::now();
      auto next_report = next_check + report_every;
      std::uint64_t errors_reported = 0;
      auto versions = release_versions(options_.state_dir);
      while (!stop.load()) {
        const auto now = steady_clock::now();
        if (now >= next_check) {
          // An operator's `shoal-agent rollback` since the last check is reported now.
          if (auto report = health_after_rollback_since(options_.releases->release_model, versions, options_.state_dir);
              report && agent != nullptr) {
            agent->queue_health_report(std::move(*report));
          }
          std::optional<std::uint64_t> attempted;
          ReleaseUpdateOptions update = *options_.releases;
          update.on_attempt = [&](std::uint64_t version) { attempted = version; };
          auto outcome = install_release(update);
          if (options_.log) {
            options_.log("release check: " + (outcome ? describe_install(*outcome) : outcome.error().describe()));
          }
          if (agent != nullptr) {
            if (auto report = health_after_check(update.release_model, outcome, attempted, options_.state_dir)) {
              agent->queue_health_report(std::move(*report));
            }
          }
          versions = release_versions(options_.state_dir);
          next_check = now + check_every;
        }
        if (reports && now >= next_report) {
          const std::uint64_t errors = service_ ? service_->metrics().inference_errors() : 0;
          agent->queue_health_report(
              periodic_health(options_.releases->release_model, options_.state_dir, errors - errors_reported));
          errors_reported = errors;
          next_report = now + report_every;
        }
        const auto next = reports ? std::min(next_check, next_report) : next_check;
        sleep_unless_stopped(stop, std::chrono::duration_cast<std::chrono::milliseconds>(next - steady_clock::now()));
      }
    });
  }
  std::thread watcher;
  if (service_) {
    watcher = std::thread([this, &stop] {
      std::string last_error;
      while (!stop.load()) {
        wait_for_global_model(stop, std::chrono::seconds(1));
        if (stop.load()) break;
        auto status = refresh();
        const std::string error = status ? "" : status.error().describe();
        if (!error.empty() && error != last_error && options_.log) options_.log("serving: " + error);
        last_error = error;
      }
    });
  }
  if (agent) {
    agent->run(stop);
  } else {
    while (!stop.load()) sleep_unless_stopped(stop, std::chrono::seconds(1));
  }
  if (release_checks.joinable()) release_checks.join();
  if (watcher.joinable()) watcher.join();
}

}  // namespace shoal::client
