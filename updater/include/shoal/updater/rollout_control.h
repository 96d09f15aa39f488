// The operator's (or the aggregator's) side of staged rollouts: start,
// advance and halt write the rollout document of a model into the delegated
// "rollout" role, sign it with that role's online key and publish the role
// alone with a new snapshot and timestamp. Root and targets, and their
// offline keys, are not touched.
//
// The repository must already delegate "rollout/*" to the role "rollout"
// (shoal-release delegate --role rollout --paths 'rollout/*' --terminating),
// published with the targets key.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"
#include "shoal/updater/release_repository.h"
#include "shoal/updater/rollout.h"

namespace shoal::updater {

struct OnlineKeys {
  const crypto::IdentityKeyPair* rollout = nullptr;
  const crypto::IdentityKeyPair* snapshot = nullptr;
  const crypto::IdentityKeyPair* timestamp = nullptr;
};

// The rollout of `model` as last written, or nullopt if it never had one.
Result<std::optional<Rollout>> current_rollout(const ReleaseRepository& repository, const std::string& model);

// Starts a rollout of released `version` at its first stage. Group stages
// must list their devices already. Replaces an earlier rollout of the model.
Result<Rollout> start_rollout(ReleaseRepository& repository, const std::string& model, std::uint64_t version,
                              std::vector<RolloutStage> stages, std::int64_t soak_s, const OnlineKeys& keys,
                              UnixTime now);
// Moves an active rollout to its next stage (complete after the last),
// once the current stage has soaked, or at once with `force`.
Result<Rollout> advance_rollout(ReleaseRepository& repository, const std::string& model, bool force,
                                const OnlineKeys& keys, UnixTime now);
// Halts the rollout: no device installs its version, and those that run it roll back.
Result<Rollout> halt_rollout(ReleaseRepository& repository, const std::string& model, const std::string& reason,
                             const OnlineKeys& keys, UnixTime now);

}  // namespace shoal::updater
