// A release repository for rollout tests: versions 1 and 2 of "cnn", the
// rollout role delegated to an online key, and a rollout of version 2 to
// every device; its keys are saved as files for an aggregator's [rollout].
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

#include "shoal/crypto/identity.h"
#include "shoal/crypto/key_file.h"
#include "shoal/updater/release_repository.h"
#include "shoal/updater/rollout_control.h"
#include "shoal/weights/weights.h"
#include "temp_dir.h"

namespace shoal::testing {

inline weights::Weights model_version(std::uint64_t version) {
  auto layout = *weights::Layout::create({{"w", {16}}});
  return *weights::Weights::from_values(layout, version, std::vector<float>(16, 0.1f * static_cast<float>(version)));
}

struct Releases {
  TempDir dir;
  crypto::IdentityKeyPair root = crypto::IdentityKeyPair::generate(), targets = crypto::IdentityKeyPair::generate(),
                          online = crypto::IdentityKeyPair::generate(), rollout = crypto::IdentityKeyPair::generate();
  std::filesystem::path repo = dir / "releases";

  Releases() {
    std::map<updater::RoleName, updater::RoleKeyChoice> keys;
    keys[updater::RoleName::root].keys = {root.public_identity()};
    keys[updater::RoleName::targets].keys = {targets.public_identity()};
    keys[updater::RoleName::snapshot].keys = {online.public_identity()};
    keys[updater::RoleName::timestamp].keys = {online.public_identity()};
    const auto now = updater::now_utc();
    auto repository = updater::ReleaseRepository::init(repo, keys, now);
    REQUIRE(repository);
    REQUIRE(repository->sign(updater::RoleName::root, root));
    updater::DelegationChoice delegation{"rollout", {rollout.public_identity()}, 1, true, {"rollout/*"}, {}};
    REQUIRE(repository->delegate(delegation, "targets", now));
    REQUIRE(repository->sign_delegated("rollout", rollout));
    for (std::uint64_t version : {1, 2}) {
      REQUIRE(repository->add(model_version(version), "cnn", 1, now));
      REQUIRE(repository->sign(updater::RoleName::targets, targets));
      REQUIRE(repository->publish(online, online, now));
    }
    const updater::OnlineKeys online_keys{&rollout, &online, &online};
    REQUIRE(updater::start_rollout(*repository, "cnn", 2, {{100, "", {}}}, 0, online_keys, now));
    REQUIRE(crypto::save_identity_key(dir / "rollout.key", {crypto::KeyRole::release, rollout}));
    REQUIRE(crypto::save_identity_key(dir / "online.key", {crypto::KeyRole::release, online}));
  }

  updater::RolloutState state() {
    auto repository = updater::ReleaseRepository::open(repo);
    REQUIRE(repository);
    auto rollout = updater::current_rollout(*repository, "cnn");
    REQUIRE(rollout);
    REQUIRE(*rollout);
    return (*rollout)->state;
  }
};

}  // namespace shoal::testing
