// The operator's side of a release repository: a plain directory that any
// static file server can serve, laid out as TUF clients expect.
//
//   <repo>/metadata/1.root.json, 2.root.json, ...   every root version, for rotation
//   <repo>/metadata/root.json                        the newest root
//   <repo>/metadata/targets.json, snapshot.json, timestamp.json
//   <repo>/metadata/7.targets.json, 9.snapshot.json  every version, by name (consistent snapshots)
//   <repo>/targets/cnn/v12.weights                   target files
//   <repo>/targets/cnn/<sha256>.v12.weights          the same file, by hash (consistent snapshots)
//   <repo>/targets/cnn/v12.from-v11.delta
//   <repo>/metadata/team-a.json, 3.team-a.json       delegated targets roles
//   <repo>/staged/root.json, targets.json            working copies, not yet published
//   <repo>/staged/team-a.json                        (delegated roles' too)
//
// Changes are made to the staged copies: `add` and `rotate` write new
// versions with no signatures, `sign` adds one signature at a time (offline,
// so several holders can each add theirs towards a threshold), and `publish`
// checks thresholds, copies them to metadata/ and writes a new snapshot and
// timestamp with the online keys. Devices see nothing until publish, and
// every file is written atomically.
//
// With consistent snapshots (the default, set in root), every published
// snapshot and targets version keeps its own file and every target file is
// also reachable by its hash, so a client that read timestamp version N
// fetches exactly the files of publication N, even from a mirror or CDN
// that is half-way through copying publication N+1. The timestamp, written
// last, is the only file whose name is reused.
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

// A delegation `delegate` stages: the role `name` may sign the target
// paths that match `paths` (or whose SHA-256 starts with one of
// `path_hash_prefixes`), with `threshold` of `keys`.
struct DelegationChoice {
  std::string name;
  std::vector<crypto::PublicIdentity> keys;
  std::uint32_t threshold = 1;
  bool terminating = false;
  std::vector<std::string> paths;
  std::vector<std::string> path_hash_prefixes;
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
                                        const ExpiryDays& expiry = {}, bool consistent_snapshot = true);
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

  // Stages a delegation from `delegator` ("targets" or a delegated role) to
  // a new or changed role, and the delegated role's own (empty) metadata if
  // it has none yet. The delegator's metadata then needs signing again.
  Status delegate(const DelegationChoice& choice, const std::string& delegator, UnixTime now);
  // Stages target `path` with `bytes` in the metadata of `role` ("targets"
  // or a delegated role, whose delegation must cover the path).
  Status add_target(const std::string& role, const std::string& path, std::span<const std::uint8_t> bytes,
                    const nlohmann::json& custom, UnixTime now);
  // Signs the staged metadata of delegated role `role` with one of the keys
  // its delegator names.
  Status sign_delegated(const std::string& role, const crypto::IdentityKeyPair& key);
  // Publishes the staged metadata of delegated `role` alone, with a new
  // snapshot and timestamp: what the holder of the role's online key does
  // (a rollout stage, say), leaving root and targets as published. The
  // role must meet the threshold of its published delegation.
  Status publish_delegated(const std::string& role, const crypto::IdentityKeyPair& snapshot_key,
                           const crypto::IdentityKeyPair& timestamp_key, UnixTime now);
  // The staged metadata of delegated roles, by name.
  const std::map<std::string, SignedMetadata>& staged_delegated_files() const { return staged_delegated_files_; }
  // Where a delegated role is delegated from, and how: nullopt if no staged
  // targets metadata delegates it.
  std::optional<std::pair<std::string, DelegatedRole>> delegation_of(const std::string& role) const;
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
  // Starts a new staged targets version if the current one is already published.
  Status begin_targets_change(UnixTime now);
  // The staged targets metadata of `role`, "targets" or delegated.
  Result<std::pair<TargetsMetadata*, SignedMetadata*>> staged_role(const std::string& role);
  Status save_staged(const std::string& role);
  // Starts a new staged version of `role` if its current one is published.
  Status begin_change(const std::string& role, TargetsMetadata& targets, UnixTime now);
  // Writes a targets role's metadata (and, with consistent snapshots, its
  // versioned copy and its targets' hash names) and adds it to `listed`.
  Status write_targets_role(const std::string& role, const TargetsMetadata& targets, const std::string& text,
                            bool consistent, std::map<std::string, MetaFile>& listed);
  // A snapshot listing what the published one did, updated by `listed`, then a timestamp naming it.
  Status write_snapshot_and_timestamp(const std::map<std::string, MetaFile>& listed, bool consistent,
                                      const crypto::IdentityKeyPair& snapshot_key,
                                      const crypto::IdentityKeyPair& timestamp_key, UnixTime now);
  // Whether every staged delegated role meets its delegator's threshold.
  Status verify_delegated() const;

  std::filesystem::path dir_;
  ExpiryDays expiry_;
  SignedMetadata staged_root_file_, staged_targets_file_;
  RootMetadata staged_root_;
  TargetsMetadata staged_targets_;
  std::map<std::string, SignedMetadata> staged_delegated_files_;
  std::map<std::string, TargetsMetadata> staged_delegated_;
};

}  // namespace shoal::updater
