#include "fleet_releases.h"

#include <system_error>

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/client/release_health.h"
#include "shoal/updater/repository_fetcher.h"

namespace shoal::simulations {

Result<std::unique_ptr<FleetReleaseChannel>> FleetReleaseChannel::open(const FleetReleases& settings,
                                                                       const std::filesystem::path& scratch) {
  if (settings.model.empty()) return make_error(ErrorCode::invalid_argument, "releases.model is empty");
  if (!(settings.check_every_s > 0)) {
    return make_error(ErrorCode::invalid_argument, "releases.check_every_s must be above 0");
  }
  if (!(settings.smoke_failure_share >= 0 && settings.smoke_failure_share <= 1)) {
    return make_error(ErrorCode::invalid_argument, "releases.smoke_failure_share must be within [0, 1]");
  }
  auto root = base::read_file(settings.trusted_root, updater::DownloadLimits{}.root_bytes);
  if (!root) return root.error();
  std::error_code ignored;
  std::filesystem::remove_all(scratch, ignored);  // the simulator's own: every run starts from the given root
  if (auto status = updater::TufClient::trust_root(scratch, base::text_bytes(*root), settings.trusted_root.string());
      !status) {
    return status.error();
  }
  auto client = updater::TufClient::open(scratch);
  if (!client) return client.error();
  std::unique_ptr<FleetReleaseChannel> channel(new FleetReleaseChannel(settings, std::move(client).value()));
  if (auto status = channel->refresh(); !status) return status.error();
  return channel;
}

Status FleetReleaseChannel::refresh() {
  auto timestamp =
      base::read_file(settings_.repository / "metadata" / "timestamp.json", updater::DownloadLimits{}.timestamp_bytes);
  if (timestamp && *timestamp == timestamp_) return ok_status();
  updater::DirectoryFetcher fetcher(settings_.repository);
  const auto now = updater::now_utc();
  auto targets = client_.refresh(fetcher, now);
  if (!targets) return targets.error();
  auto files = updater::release_files(*targets, settings_.model, "targets.json");
  if (!files) return files.error();
  auto rollout = updater::read_rollout(fetcher, client_, settings_.model, now);
  if (!rollout) return rollout.error();
  files_ = std::move(files).value();
  full_hashes_.clear();
  for (const auto& file : files_) {
    if (file.kind == updater::ReleaseFileKind::full) full_hashes_[file.version] = file.values_hash;
  }
  rollout_ = std::move(rollout).value();
  if (timestamp) timestamp_ = std::move(timestamp).value();
  return ok_status();
}

Result<ReleaseCheck> FleetReleaseChannel::check(const DeviceRelease& device, const std::string& device_key_hex) const {
  const updater::DeviceReleases held{device.active ? std::optional<std::uint64_t>(device.active) : std::nullopt,
                                     device.previous != 0, device.rolled_back};
  auto decision = updater::decide_release(files_, rollout_, held, device_key_hex);
  if (!decision) return decision.error();
  ReleaseCheck check{*decision, std::nullopt};
  if (decision->action != updater::ReleaseAction::install) return check;
  std::optional<crypto::Blake2b256Digest> active_hash;
  if (const auto found = full_hashes_.find(device.active); found != full_hashes_.end()) active_hash = found->second;
  auto file = updater::choose_file(files_, decision->version, active_hash);
  if (!file) return file.error();
  check.file = std::move(file).value();
  return check;
}

std::optional<protocol::HealthReport> release_report(const std::string& model, const DeviceRelease& device,
                                                     ReleaseEvent event, std::uint64_t version) {
  const client::ReleaseVersions versions{device.active, device.previous};
  updater::InstallOutcome done;
  switch (event) {
    case ReleaseEvent::installed:
      done.installed = true;
      done.version = version;
      return client::health_after_check(model, done, version, versions);
    case ReleaseEvent::rolled_back:
      done.halted_rollback = version;
      done.version = device.active;
      return client::health_after_check(model, done, version, versions);
    case ReleaseEvent::smoke_test_failed: {
      const Result<updater::InstallOutcome> failed = make_error(
          ErrorCode::verification,
          "install step '" + std::string(updater::step_name(updater::InstallStep::smoke_test)) + "': simulated failure");
      return client::health_after_check(model, failed, version, versions);
    }
  }
  return std::nullopt;
}

}  // namespace shoal::simulations
