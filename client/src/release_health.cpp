#include "shoal/client/release_health.h"

#include <charconv>

#include "shoal/updater/model_store.h"

namespace shoal::client {
namespace {

// "v12-0123456789abcdef.weights" -> 12.
std::uint64_t version_of(const std::optional<std::string>& file) {
  if (!file || file->size() < 2 || (*file)[0] != 'v') return 0;
  std::uint64_t version = 0;
  const auto [end, error] = std::from_chars(file->data() + 1, file->data() + file->size(), version);
  return error == std::errc() && end != file->data() + 1 ? version : 0;
}

protocol::HealthReport base_report(const std::string& model, const std::string& event, ReleaseVersions versions) {
  return protocol::HealthReport{model, event, versions.active, versions.previous, 0, "", "not_run", 0, 0.0, 0};
}

}  // namespace

ReleaseVersions release_versions(const std::filesystem::path& state_dir) {
  auto store = updater::ModelStore::open(updater::release_models_dir(state_dir));
  if (!store) return {};
  return {version_of(store->active()), version_of(store->previous())};
}

std::optional<protocol::HealthReport> health_after_check(const std::string& model,
                                                          const Result<updater::InstallOutcome>& outcome,
                                                          std::optional<std::uint64_t> attempted,
                                                          const std::filesystem::path& state_dir) {
  return health_after_check(model, outcome, attempted, release_versions(state_dir));
}

std::optional<protocol::HealthReport> health_after_check(const std::string& model,
                                                          const Result<updater::InstallOutcome>& outcome,
                                                          std::optional<std::uint64_t> attempted,
                                                          ReleaseVersions versions) {
  if (outcome && outcome->installed) {
    auto report = base_report(model, "install", versions);
    report.attempted_version = outcome->version;
    report.smoke_test = "passed";
    return report;
  }
  if (outcome && outcome->halted_rollback) {
    auto report = base_report(model, "rollback", versions);
    report.attempted_version = *outcome->halted_rollback;
    return report;
  }
  if (outcome || !attempted) return std::nullopt;  // nothing new, or it failed before choosing a version
  auto report = base_report(model, "install", versions);
  report.attempted_version = *attempted;
  report.failed_step = updater::failed_install_step(outcome.error());
  if (report.failed_step.empty()) report.failed_step = "install";
  report.failed_step = report.failed_step.substr(0, 64);
  // Steps before the smoke test leave it not run; a failure at it or after means it did not pass.
  report.smoke_test = report.failed_step == updater::step_name(updater::InstallStep::smoke_test) ? "failed" : "not_run";
  return report;
}

std::optional<protocol::HealthReport> health_after_rollback_since(const std::string& model, ReleaseVersions before,
                                                                  const std::filesystem::path& state_dir) {
  auto store = updater::ModelStore::open(updater::release_models_dir(state_dir));
  if (!store || !store->rolled_back() || before.active == 0 || *store->rolled_back() != before.active) {
    return std::nullopt;
  }
  const ReleaseVersions now{version_of(store->active()), version_of(store->previous())};
  if (now.active == before.active) return std::nullopt;
  auto report = base_report(model, "rollback", now);
  report.attempted_version = before.active;
  return report;
}

protocol::HealthReport periodic_health(const std::string& model, const std::filesystem::path& state_dir,
                                       std::uint64_t inference_errors) {
  auto report = base_report(model, "periodic", release_versions(state_dir));
  report.inference_errors = inference_errors;
  return report;
}

}  // namespace shoal::client
