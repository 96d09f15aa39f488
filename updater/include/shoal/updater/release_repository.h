// The operator's side of a release repository: a plain directory that any
// static file server can serve, laid out as TUF clients expect.
//
//   <repo>/metadata/1.root.json, 2.root.json, ...   every root version, for rotation
//   <repo>/metadata/root.json                        the newest root
//   <repo>/metadata/targets.json, snapshot.json, timestamp.json
//   <repo>/targets/cnn/v12.weights                   target files
//   <repo>/targets/cnn/v12.from-v11.delta
//   <repo>/staged/root.json, targets.json            working copies, not yet published
//
// Changes are made to the staged copies: `add` and `rotate` write new
// versions with no signatures, `sign` adds one signature at a time (offline,
// so several holders can each add theirs towards a threshold), and `publish`
// checks thresholds, copies them to metadata/ and writes a new snapshot and
// timestamp with the online keys. Devices see nothing until publish, and
// every file is written atomically.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"
#include "shoal/updater/release_file.h"
#include "shoal/updater/tuf_metadata.h"
#include "shoal/weights/weights.h"

namespace shoal::updater {

inline constexpr double kMaxDeltaFraction = 0.9;

struct RoleKeyChoice {
  std::vector<crypto::PublicIdentity> keys;
  std::uint32_t threshold = 1;
};

// How long each role's metadata stays valid after it is written.
struct ExpiryDays {
  int root = 365;
  int targets = 90;
  int snapshot = 7;
  int timestamp = 1;
};

// What `add` wrote.
struct AddedRelease {
  ReleaseFile full;
  std::vector<ReleaseFile> deltas;
  std::vector<std::string> skipped;  // deltas not written, and why
  std::optional<float> lossy_max_error;  // a lossy release: its largest change to a weight
};

class ReleaseRepository {
 public:
  // Creates the repository at `dir` (which must not hold one) with staged
  // root version 1 naming the keys of all four roles, and an empty staged targets.
  static Result<ReleaseRepository> init(const std::filesystem::path& dir,
                                        const std::map<RoleName, RoleKeyChoice>& keys, UnixTime now,
                                        const ExpiryDays& expiry = {});
  static Result<ReleaseRepository> open(const std::filesystem::path& dir);

  // Stages `weights` as version weights.version() of `model`: its full file
  // and deltas from up to `delta_count` earlier versions, each kept only if
  // under kMaxDeltaFraction of the full file (else a device is better served
  // by the full file, which needs no base). The version must be newer than
  // every release of the model.
  //
  // With `lossy_error_bound`, the version released is quantize_towards()
  // the newest earlier version (each weight within the bound), so its delta
  // from that version is small; that quantised version is what the full
  // file holds and the metadata hashes. The first version of a model is
  // always exact.
  Result<AddedRelease> add(const weights::Weights& weights, const std::string& model, std::size_t delta_count,
                           UnixTime now, std::optional<float> lossy_error_bound = {});
  // Adds `key`'s signature to the staged metadata of `role` (root or
  // targets). A root is signed by keys of its own root role and, for
  // rotation, of the previous root's.
  Status sign(RoleName role, const crypto::IdentityKeyPair& key);
  // Publishes the staged root and targets if their thresholds are met, then
  // a new snapshot and timestamp signed with the online keys.
  Status publish(const crypto::IdentityKeyPair& snapshot_key, const crypto::IdentityKeyPair& timestamp_key,
                 UnixTime now);
  // Stages root version N+1 with the roles in `changes` given new keys and
  // thresholds (the others keep theirs). It needs the signatures of both
  // the old and the new root keys before it can be published.
  Status rotate(const std::map<RoleName, RoleKeyChoice>& changes, UnixTime now);

  const std::filesystem::path& dir() const { return dir_; }
  const RootMetadata& staged_root() const { return staged_root_; }
  const TargetsMetadata& staged_targets() const { return staged_targets_; }
  const SignedMetadata& staged_root_file() const { return staged_root_file_; }
  const SignedMetadata& staged_targets_file() const { return staged_targets_file_; }

  // The expiry policy of this repository's later writes.
  ExpiryDays& expiry() { return expiry_; }

 private:
  explicit ReleaseRepository(std::filesystem::path dir) : dir_(std::move(dir)) {}
  Status load();
  Status save_staged_root();
  Status save_staged_targets();
  // The published root before the staged one, if the staged root is a rotation.
  Result<std::optional<RootMetadata>> previous_root() const;
  Result<std::optional<RootMetadata>> published_root() const;
  Result<std::optional<TargetsMetadata>> published_targets() const;
  // Starts a new staged targets version if the current one is already published.
  Status begin_targets_change(UnixTime now);

  std::filesystem::path dir_;
  ExpiryDays expiry_;
  SignedMetadata staged_root_file_, staged_targets_file_;
  RootMetadata staged_root_;
  TargetsMetadata staged_targets_;
};

}  // namespace shoal::updater
