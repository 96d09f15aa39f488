// The health reports a device sends its aggregator for staged rollouts
// (updater/rollout_health.h): after every release check that installed,
// failed or rolled back, and every report_every_s. They say which release
// version runs and which ran before it, how the last install went, and how
// many requests the served model failed; the agent adds the accuracy of the
// active release on its held-out data before sending.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "shoal/base/result.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/updater/release_installer.h"

namespace shoal::client {

// The active and previous release versions in `state_dir` (0: none).
struct ReleaseVersions {
  std::uint64_t active = 0;
  std::uint64_t previous = 0;
};
ReleaseVersions release_versions(const std::filesystem::path& state_dir);

// The report after a release check, or nullopt when the check changed
// nothing worth reporting (already up to date, held back).
// `attempted`: the version the install tried, if it got as far as choosing one.
std::optional<protocol::HealthReport> health_after_check(const std::string& model,
                                                          const Result<updater::InstallOutcome>& outcome,
                                                          std::optional<std::uint64_t> attempted,
                                                          const std::filesystem::path& state_dir);
// The same, for a device whose versions after the check are `versions`.
std::optional<protocol::HealthReport> health_after_check(const std::string& model,
                                                          const Result<updater::InstallOutcome>& outcome,
                                                          std::optional<std::uint64_t> attempted,
                                                          ReleaseVersions versions);
// A rollback made outside the release checks (`shoal-agent rollback`):
// the report when the model store has rolled back from `before.active`
// since the versions were `before`, else nullopt.
std::optional<protocol::HealthReport> health_after_rollback_since(const std::string& model, ReleaseVersions before,
                                                                  const std::filesystem::path& state_dir);
// The report every report_every_s.
protocol::HealthReport periodic_health(const std::string& model, const std::filesystem::path& state_dir,
                                       std::uint64_t inference_errors);

}  // namespace shoal::client
