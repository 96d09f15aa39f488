// The aggregator's part in staged rollouts: it records the health reports
// devices send (updater/rollout_health.h) and, with a rollout policy in its
// config, halts a rollout by itself when the policy says so, publishing the
// halt with the online rollout key into the release repository it serves.
// Devices on the halted version roll back at their next check.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/updater/rollout_health.h"

namespace shoal::aggregator {

// [rollout] in the aggregator's config.
struct RolloutGuardConfig {
  std::filesystem::path rollout_key, snapshot_key, timestamp_key;  // secret key files (role release)
  updater::RolloutPolicy policy;
  // Automatic halts need all three keys and a release repository.
  bool enabled() const { return !rollout_key.empty(); }
};

// What a check did, for the log and the metrics log.
struct RolloutHalt {
  std::string model;
  std::uint64_t version = 0;
  std::size_t stage = 0;
  std::string reason;
  std::string error;  // non-empty: the halt could not be published
};

class RolloutGuard {
 public:
  // Loads the keys when `config` is enabled; `repository` is the release
  // repository the aggregator serves.
  static Result<RolloutGuard> open(const RolloutGuardConfig& config, std::filesystem::path repository);

  // Records a report from `device_hex` (its ed25519 key, hex).
  updater::HealthReport on_report(const std::string& device_hex, const protocol::HealthReport& message);
  // Checks each model reported on since the last check against its active
  // rollout, and halts those the policy says must stop.
  std::vector<RolloutHalt> check(updater::UnixTime now);

  const updater::RolloutHealth& health() const { return health_; }

 private:
  RolloutGuard(RolloutGuardConfig config, std::filesystem::path repository)
      : config_(std::move(config)), repository_(std::move(repository)) {}

  RolloutGuardConfig config_;
  std::filesystem::path repository_;
  std::optional<crypto::IdentityKeyPair> rollout_key_, snapshot_key_, timestamp_key_;
  updater::RolloutHealth health_;
  std::set<std::string> reported_models_;  // since the last check
};

// The health the "health" lines of a metrics log describe, as the
// aggregator saw it: what `shoal-aggregator rollout status` shows.
Result<updater::RolloutHealth> replay_health(const std::filesystem::path& metrics_log);

// The report as the rollout monitor reads it.
updater::HealthReport to_health_report(const std::string& device_hex, const protocol::HealthReport& message);

}  // namespace shoal::aggregator
