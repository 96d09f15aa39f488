#include "shoal/aggregator/rollout_guard.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "shoal/crypto/key_file.h"
#include "shoal/updater/rollout_control.h"

namespace shoal::aggregator {

updater::HealthReport to_health_report(const std::string& device_hex, const protocol::HealthReport& message) {
  updater::HealthReport report;
  report.device = device_hex;
  report.model = message.model;
  report.event = message.event == "install"    ? updater::HealthEvent::install
                 : message.event == "rollback" ? updater::HealthEvent::rollback
                                               : updater::HealthEvent::periodic;
  report.active_version = message.active_version;
  report.previous_version = message.previous_version;
  report.attempted_version = message.attempted_version;
  report.failed_step = message.failed_step;
  report.smoke_test = message.smoke_test == "passed"   ? updater::SmokeTest::passed
                      : message.smoke_test == "failed" ? updater::SmokeTest::failed
                                                       : updater::SmokeTest::not_run;
  report.inference_errors = message.inference_errors;
  if (message.accuracy_samples > 0) report.accuracy = message.accuracy;
  report.accuracy_samples = message.accuracy_samples;
  return report;
}

Result<updater::RolloutHealth> replay_health(const std::filesystem::path& metrics_log) {
  std::ifstream in(metrics_log);
  if (!in) return make_error(ErrorCode::not_found, "cannot read the metrics log " + metrics_log.string());
  updater::RolloutHealth health;
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find("\"event\":\"health\"") == std::string::npos) continue;
    const auto entry = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (entry.is_discarded() || !entry.is_object()) {
      return make_error(ErrorCode::corrupt, metrics_log.string() + " line " + std::to_string(number) + ": not JSON");
    }
    protocol::HealthReport message{};
    try {
      message.model = entry.at("model").get<std::string>();
      message.event = entry.at("report").get<std::string>();
      message.active_version = entry.at("active_version").get<std::uint64_t>();
      message.previous_version = entry.at("previous_version").get<std::uint64_t>();
      message.attempted_version = entry.at("attempted_version").get<std::uint64_t>();
      message.failed_step = entry.at("failed_step").get<std::string>();
      message.smoke_test = entry.at("smoke_test").get<std::string>();
      message.inference_errors = entry.at("inference_errors").get<std::uint64_t>();
      message.accuracy_samples = entry.at("accuracy_samples").get<std::uint64_t>();
      message.accuracy = entry.at("accuracy").is_number() ? entry.at("accuracy").get<double>() : 0.0;
      health.on_report(to_health_report(entry.at("device").get<std::string>(), message));
    } catch (const nlohmann::json::exception& error) {
      return make_error(ErrorCode::corrupt,
                        metrics_log.string() + " line " + std::to_string(number) + ": " + error.what());
    }
  }
  return health;
}

Result<RolloutGuard> RolloutGuard::open(const RolloutGuardConfig& config, std::filesystem::path repository) {
  RolloutGuard guard(config, std::move(repository));
  if (!config.enabled()) return guard;
  if (guard.repository_.empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "aggregator config: rollout.rollout_key needs release.repository, where halts are published");
  }
  if (config.snapshot_key.empty() || config.timestamp_key.empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "aggregator config: rollout.rollout_key needs rollout.snapshot_key and rollout.timestamp_key");
  }
  for (auto [path, key] : {std::pair{&config.rollout_key, &guard.rollout_key_},
                           {&config.snapshot_key, &guard.snapshot_key_}, {&config.timestamp_key, &guard.timestamp_key_}}) {
    auto loaded = crypto::load_identity_key(*path, crypto::KeyRole::release);
    if (!loaded) return make_error(loaded.error().code, "aggregator config: rollout: " + loaded.error().message);
    *key = loaded->keys;
  }
  return guard;
}

updater::HealthReport RolloutGuard::on_report(const std::string& device_hex, const protocol::HealthReport& message) {
  auto report = to_health_report(device_hex, message);
  if (health_.on_report(report)) reported_models_.insert(report.model);
  return report;
}

std::vector<RolloutHalt> RolloutGuard::check(updater::UnixTime now) {
  std::vector<RolloutHalt> halts;
  const auto models = std::exchange(reported_models_, {});
  if (!config_.enabled() || models.empty()) return halts;
  auto repository = updater::ReleaseRepository::open(repository_);
  if (!repository) return halts;  // no repository to halt in: nothing a device sent can change that
  for (const auto& model : models) {
    auto rollout = updater::current_rollout(*repository, model);
    if (!rollout || !*rollout) continue;
    auto reason = health_.halt_reason(**rollout, config_.policy);
    if (!reason) continue;
    RolloutHalt halt{model, (*rollout)->version, (*rollout)->stage, *reason, ""};
    const updater::OnlineKeys keys{&*rollout_key_, &*snapshot_key_, &*timestamp_key_};
    if (auto halted = updater::halt_rollout(*repository, model, "automatic: " + *reason, keys, now); !halted) {
      halt.error = halted.error().message;
      reported_models_.insert(model);  // tried again at the next check
    }
    halts.push_back(std::move(halt));
  }
  return halts;
}

}  // namespace shoal::aggregator
