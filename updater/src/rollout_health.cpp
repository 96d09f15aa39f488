#include "shoal/updater/rollout_health.h"

#include <cstdio>

namespace shoal::updater {
namespace {

// Versions kept per device: enough for the rollout's version and the one before.
constexpr std::size_t kVersionsKept = 8;

template <typename Map>
void keep_newest(Map& map) {
  while (map.size() > kVersionsKept) map.erase(map.begin());
}

std::string percent(double share) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", 100 * share);
  return text;
}

}  // namespace

std::string_view health_event_name(HealthEvent event) {
  switch (event) {
    case HealthEvent::install: return "install";
    case HealthEvent::rollback: return "rollback";
    case HealthEvent::periodic: return "periodic";
  }
  return "?";
}

std::string_view smoke_test_name(SmokeTest result) {
  switch (result) {
    case SmokeTest::not_run: return "not_run";
    case SmokeTest::passed: return "passed";
    case SmokeTest::failed: return "failed";
  }
  return "?";
}

bool RolloutHealth::on_report(const HealthReport& report) {
  if (!devices_.contains(report.model) && devices_.size() >= kMaxModels) return false;
  DeviceState& device = devices_[report.model][report.device];
  device.active_version = report.active_version;
  if (report.attempted_version != 0) {
    // A failed install (the smoke test included) counts against the version it tried.
    const bool failed = !report.failed_step.empty() || report.smoke_test == SmokeTest::failed;
    bool& recorded = device.failed[report.attempted_version];
    recorded = recorded || failed;
    keep_newest(device.failed);
  }
  if (report.active_version != 0) {
    // Running a version is having tried it; errors while running it are failures.
    bool& recorded = device.failed[report.active_version];
    recorded = recorded || report.inference_errors > 0;
    keep_newest(device.failed);
    if (report.previous_version != 0 && report.previous_version != report.active_version) {
      device.ran_before[report.active_version] = report.previous_version;
      keep_newest(device.ran_before);
    }
    if (report.accuracy && report.accuracy_samples > 0) {
      device.accuracy[report.active_version] = *report.accuracy;
      keep_newest(device.accuracy);
    }
  }
  return true;
}

VersionHealth RolloutHealth::health(const std::string& model, std::uint64_t version) const {
  VersionHealth health;
  auto found = devices_.find(model);
  if (found == devices_.end()) return health;
  double change_sum = 0;
  for (const auto& [key, device] : found->second) {
    if (auto tried = device.failed.find(version); tried != device.failed.end()) {
      ++health.tried;
      health.failed += tried->second;
    }
    health.running += device.active_version == version;
    auto before = device.ran_before.find(version);
    auto on_version = device.accuracy.find(version);
    if (before == device.ran_before.end() || on_version == device.accuracy.end()) continue;
    auto on_before = device.accuracy.find(before->second);
    if (on_before == device.accuracy.end()) continue;
    ++health.accuracy_pairs;
    change_sum += on_version->second - on_before->second;
  }
  if (health.accuracy_pairs > 0) health.mean_accuracy_change = change_sum / static_cast<double>(health.accuracy_pairs);
  return health;
}

std::optional<std::string> RolloutHealth::halt_reason(const Rollout& rollout, const RolloutPolicy& policy) const {
  if (rollout.state != RolloutState::active) return std::nullopt;
  const VersionHealth health = this->health(rollout.model, rollout.version);
  if (health.tried >= policy.min_reports && health.tried > 0) {
    const double share = static_cast<double>(health.failed) / static_cast<double>(health.tried);
    if (share > policy.max_failure_share) {
      return std::to_string(health.failed) + " of " + std::to_string(health.tried) + " devices failed version " +
             std::to_string(rollout.version) + " (" + percent(share) + ", above the " +
             percent(policy.max_failure_share) + " allowed)";
    }
  }
  if (health.accuracy_pairs >= policy.min_accuracy_devices && health.accuracy_pairs > 0 &&
      -health.mean_accuracy_change > policy.max_accuracy_drop) {
    return "held-out accuracy fell by " + percent(-health.mean_accuracy_change) + " on " +
           std::to_string(health.accuracy_pairs) + " devices against the version they ran before (more than " +
           percent(policy.max_accuracy_drop) + ")";
  }
  return std::nullopt;
}

std::size_t RolloutHealth::devices() const {
  std::size_t count = 0;
  for (const auto& [model, devices] : devices_) count += devices.size();
  return count;
}

}  // namespace shoal::updater
