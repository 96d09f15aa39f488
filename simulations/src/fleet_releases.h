// The release repository as a simulated fleet sees it, for staged rollouts
// beside training. One TUF client verifies each publication the devices
// could fetch (devices of one mirror see the same verified metadata), and
// each device decides what to do from that view with the agent's own rule
// (updater::decide_release), its versions held in memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/hash.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/simulations/fleet_engine.h"
#include "shoal/updater/release_installer.h"

namespace shoal::simulations {

// What one simulated device runs, as its model store would say.
struct DeviceRelease {
  std::uint64_t active = 0, previous = 0;  // 0: none
  std::optional<std::uint64_t> rolled_back;
  std::uint64_t downloading = 0;  // the version on its way, 0: none
};

// A device's release check: what it decided and, to install, the file to download.
struct ReleaseCheck {
  updater::ReleaseDecision decision;
  std::optional<updater::ReleaseFile> file;
};

class FleetReleaseChannel {
 public:
  // `scratch` holds the fleet's trusted metadata; it is started afresh from settings.trusted_root.
  static Result<std::unique_ptr<FleetReleaseChannel>> open(const FleetReleases& settings,
                                                           const std::filesystem::path& scratch);

  // Reads the repository again when its timestamp changed. Not while devices check.
  Status refresh();
  // Safe from several threads at once between refreshes.
  Result<ReleaseCheck> check(const DeviceRelease& device, const std::string& device_key_hex) const;

  const FleetReleases& settings() const { return settings_; }
  const std::optional<updater::Rollout>& rollout() const { return rollout_; }

 private:
  FleetReleaseChannel(FleetReleases settings, updater::TufClient client)
      : settings_(std::move(settings)), client_(std::move(client)) {}

  FleetReleases settings_;
  updater::TufClient client_;
  std::string timestamp_;  // the timestamp.json last read
  std::vector<updater::ReleaseFile> files_;
  // Each version's values hash, from its full file: what finds the delta from the version a device runs.
  std::map<std::uint64_t, crypto::Blake2b256Digest> full_hashes_;
  std::optional<updater::Rollout> rollout_;
};

// The health report a device sends after an install, a failed one or a
// rollback of `version`, as an agent makes it (client/release_health.h).
enum class ReleaseEvent { installed, smoke_test_failed, rolled_back };
std::optional<protocol::HealthReport> release_report(const std::string& model, const DeviceRelease& device,
                                                     ReleaseEvent event, std::uint64_t version);

}  // namespace shoal::simulations
