// What devices say about a rollout, and when it should stop: a pure state
// machine fed with the devices' health reports, which the aggregator
// drives (and `shoal-aggregator rollout status` replays from the metrics
// log).
//
// A device reports after every install or rollback and every
// report_every_s: the version it runs, how its last install went (and the
// step that failed), the smoke test, inference errors, and the accuracy of
// the active model on its held-out data. For the rollout's version this
// keeps, per device, whether it failed (a failed install, a failed smoke
// test, or inference errors while running it) and its accuracy on that
// version and on the version it ran before.
//
// halt_reason() says why a rollout must halt, if it must:
//   - more than max_failure_share of the devices that tried the version
//     failed, once at least min_reports devices have tried it; or
//   - on the devices that reported an accuracy on both, the version is on
//     average more than max_accuracy_drop below the one they ran before,
//     once at least min_accuracy_devices such devices have reported.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "shoal/updater/rollout.h"

namespace shoal::updater {

enum class HealthEvent { install, rollback, periodic };
enum class SmokeTest { not_run, passed, failed };
std::string_view health_event_name(HealthEvent event);
std::string_view smoke_test_name(SmokeTest result);

struct HealthReport {
  std::string device;  // ed25519 hex
  std::string model;
  HealthEvent event = HealthEvent::periodic;
  std::uint64_t active_version = 0;
  std::uint64_t previous_version = 0;   // the version before it, 0 if none
  std::uint64_t attempted_version = 0;  // the version the last install tried, 0 if none
  std::string failed_step;              // of that install; empty: it succeeded
  SmokeTest smoke_test = SmokeTest::not_run;
  std::uint64_t inference_errors = 0;   // since the previous report
  std::optional<double> accuracy;       // of the active model on held-out data
  std::uint64_t accuracy_samples = 0;
};

struct RolloutPolicy {
  double max_failure_share = 0.02;
  std::uint64_t min_reports = 20;
  double max_accuracy_drop = 0.02;
  std::uint64_t min_accuracy_devices = 10;
};

// The health of one version across the devices that tried it.
struct VersionHealth {
  std::uint64_t tried = 0;
  std::uint64_t failed = 0;
  std::uint64_t running = 0;          // devices whose last report runs it
  std::uint64_t accuracy_pairs = 0;   // devices with an accuracy on it and on the version before
  double mean_accuracy_change = 0;    // over those devices
};

class RolloutHealth {
 public:
  // Models tracked at most: the devices are the enrolled fleet, but the
  // model names are theirs to choose.
  static constexpr std::size_t kMaxModels = 64;

  // False, and nothing kept, for a report on a model beyond the first kMaxModels.
  bool on_report(const HealthReport& report);
  VersionHealth health(const std::string& model, std::uint64_t version) const;
  // Why `rollout` must halt under `policy`, or nullopt.
  std::optional<std::string> halt_reason(const Rollout& rollout, const RolloutPolicy& policy) const;
  // Devices reported on, over all models.
  std::size_t devices() const;

 private:
  struct DeviceState {
    std::uint64_t active_version = 0;
    std::map<std::uint64_t, bool> failed;        // by version tried
    std::map<std::uint64_t, double> accuracy;    // by version run, the latest
    std::map<std::uint64_t, std::uint64_t> ran_before;  // version -> the version the device ran before it
  };
  // Per model, per device. Bounded by the fleet: one entry per device, a few versions each.
  std::map<std::string, std::map<std::string, DeviceState>> devices_;
};

}  // namespace shoal::updater
