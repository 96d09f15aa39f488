// The device's side of TUF: the client workflow of the specification's
// section 5, against a repository read through a RepositoryFetcher.
//
// The trust directory holds the device's trusted metadata: root.json (first
// obtained out of band, then each verified successor) and the last verified
// timestamp, snapshot and targets, which later updates are checked against
// so that nothing can roll the device back. Every file in it is written
// atomically, and only after it has been verified.
//
// refresh() takes the time at which the update started and judges every
// expiry against it, as the specification asks, so a slow download cannot
// stretch a file's validity.
//
// When the trusted root sets consistent_snapshot, snapshot, targets and
// delegated roles are fetched as "metadata/<version>.<role>.json" and target
// files with their SHA-256 before the file name ("targets/cnn/<hex>.v12.weights"),
// so a mirror being updated never mixes two publications. Delegated roles
// are fetched when a lookup reaches them, and kept as "<role>.json" with
// the role name percent-encoded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/env.h"
#include "shoal/base/result.h"
#include "shoal/updater/repository_fetcher.h"
#include "shoal/updater/tuf_metadata.h"

namespace shoal::updater {

// Caps on what a device downloads when the metadata gives no length.
struct DownloadLimits {
  std::uint64_t root_bytes = 512 << 10;
  std::uint64_t timestamp_bytes = 64 << 10;
  std::uint64_t snapshot_bytes = 4 << 20;
  std::uint64_t targets_bytes = 32 << 20;
  int max_root_rotations = 32;
  int max_delegations = 32;  // roles one target lookup may visit
};

struct TrustedMetadata {
  RootMetadata root;
  std::optional<TimestampMetadata> timestamp;
  std::optional<SnapshotMetadata> snapshot;
  std::optional<TargetsMetadata> targets;
  // Delegated roles verified since the last refresh, by name.
  std::map<std::string, TargetsMetadata> delegated;
};

// A target a lookup found: what its role signed about it, and which role.
struct FoundTarget {
  TargetFile file;
  std::string role;  // "targets" or a delegated role's name
};

class TufClient {
 public:
  // Starts trusting the root in `root_file`, which must meet its own root
  // threshold. Refuses a trust directory that already holds a root: later
  // roots arrive through refresh(), which checks the chain.
  static Status trust_root(const std::filesystem::path& trust_dir, std::span<const std::uint8_t> root_file,
                           std::string_view source, base::Env& env = base::Env::standard());
  // Loads the trusted metadata. A stored timestamp, snapshot or targets that
  // no longer verifies against the trusted root is ignored. The trust
  // directory is read and written through `env`, which must outlive the client.
  static Result<TufClient> open(const std::filesystem::path& trust_dir, DownloadLimits limits = {},
                                base::Env& env = base::Env::standard());

  // Spec 5.3–5.6: updates root one version at a time, then timestamp,
  // snapshot and targets, and returns the verified targets.
  Result<TargetsMetadata> refresh(RepositoryFetcher& fetcher, UnixTime start_time);
  // Spec 5.6.7: the role that signs `path`, searched from the refreshed
  // top-level targets through its delegations, pre-order depth first, each
  // role visited once, at most DownloadLimits::max_delegations of them. A
  // terminating delegation that matches ends the search below it. nullopt:
  // no role signs the path.
  Result<std::optional<FoundTarget>> find_target(RepositoryFetcher& fetcher, const std::string& path,
                                                 UnixTime start_time);
  // The metadata of delegated `role` as `delegator` (the delegating role's
  // delegations) delegates it: the kept copy if the snapshot lists its
  // version, else downloaded and verified. Valid until the next refresh.
  Result<const TargetsMetadata*> load_delegated(RepositoryFetcher& fetcher, const DelegatedRole& role,
                                                const Delegations& delegator, UnixTime start_time);
  // Spec 5.7: downloads a target of the refreshed targets, at most its
  // signed length, and checks its hashes.
  Result<std::vector<std::uint8_t>> download_target(RepositoryFetcher& fetcher, const std::string& path,
                                                    const TargetFile& target) const;

  const TrustedMetadata& trusted() const { return trusted_; }

 private:
  TufClient(std::filesystem::path trust_dir, DownloadLimits limits, base::Env& env)
      : trust_dir_(std::move(trust_dir)), limits_(limits), env_(&env) {}
  Status update_root(RepositoryFetcher& fetcher, UnixTime start_time);
  Status update_timestamp(RepositoryFetcher& fetcher, UnixTime start_time);
  Status update_snapshot(RepositoryFetcher& fetcher, UnixTime start_time);
  Status update_targets(RepositoryFetcher& fetcher, UnixTime start_time);
  // "metadata/<role>.json", or with consistent snapshots "metadata/<version>.<role>.json".
  std::string metadata_path(const std::string& encoded_role, std::uint64_t version) const;
  Status keep(const std::string& file_name, std::span<const std::uint8_t> bytes) const;
  // The kept file `file_name`, if it is the one `listed` names: of the
  // listed length and hashes, and signed as `verify` checks. It is then not
  // downloaded again.
  std::optional<SignedMetadata> kept_listed(const std::string& file_name, const MetaFile& listed,
                                            const std::function<Status(const SignedMetadata&)>& verify) const;
  void forget(RoleName role);

  std::filesystem::path trust_dir_;
  DownloadLimits limits_;
  base::Env* env_;
  TrustedMetadata trusted_;
};

}  // namespace shoal::updater
