// An operator's release repository for the end-to-end tests: logreg's
// initial weights from `shoal-agent init-model` (run as a process), one key
// for every role, and publish(v) releasing version v, every weight nudged.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <optional>

#include "child_process.h"
#include "shoal/updater/release_repository.h"
#include "shoal/weights/weights_file.h"

namespace shoal::testing {

class LogregReleases {
 public:
  // Makes `dir`/initial.weights and the repository `dir`/releases, its root signed.
  explicit LogregReleases(const std::filesystem::path& dir) {
    ChildProcess init({SHOAL_AGENT, "init-model", "--model", "logreg", "--seed", "3", "--out",
                       (dir / "initial.weights").string()},
                      dir / "init.log");
    REQUIRE(init.wait() == 0);
    auto initial = weights::read_weights_file(dir / "initial.weights");
    REQUIRE(initial);
    initial_.emplace(std::move(initial).value());
    std::map<updater::RoleName, updater::RoleKeyChoice> keys;
    for (updater::RoleName role : updater::kAllRoles) keys[role].keys = {key_.public_identity()};
    auto repository = updater::ReleaseRepository::init(dir / "releases", keys, updater::now_utc());
    REQUIRE(repository);
    repository_.emplace(std::move(repository).value());
    REQUIRE(repository_->sign(updater::RoleName::root, key_));
  }

  // Version `version` of the model: every weight nudged by a step that grows with it.
  weights::Weights version(std::uint64_t version) const {
    std::vector<float> values(initial_->values().begin(), initial_->values().end());
    for (std::size_t i = 0; i < values.size(); ++i) values[i] += 1e-4f * static_cast<float>(version * (i % 7));
    return *weights::Weights::from_values(initial_->layout(), version, std::move(values));
  }

  void publish(std::uint64_t version) {
    REQUIRE(repository_->add(this->version(version), "logreg", 2, updater::now_utc()));
    REQUIRE(repository_->sign(updater::RoleName::targets, key_));
    REQUIRE(repository_->publish(key_, key_, updater::now_utc()));
  }

 private:
  crypto::IdentityKeyPair key_ = crypto::IdentityKeyPair::generate();
  std::optional<weights::Weights> initial_;
  std::optional<updater::ReleaseRepository> repository_;
};

}  // namespace shoal::testing
