// A release repository for the zoo's logreg, signed by one key for every
// role, and a device state directory beside it: for the tests of what
// serves releases (the runtime, the C API).
#pragma once

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>

#include "shoal/client/device_runtime.h"
#include "shoal/client/release_update.h"
#include "shoal/updater/release_repository.h"
#include "temp_dir.h"

namespace shoal::testing {

// An operator's release repository for logreg, one key for every role.
struct Releases {
  TempDir dir;  // releases/ and the device's state directory device/
  crypto::IdentityKeyPair key = crypto::IdentityKeyPair::generate();
  std::optional<updater::ReleaseRepository> repository;
  weights::Weights initial = inference::Model::from_zoo("logreg", 3)->get_weights(0);

  Releases() {
    std::map<updater::RoleName, updater::RoleKeyChoice> keys;
    for (updater::RoleName role : updater::kAllRoles) keys[role].keys = {key.public_identity()};
    auto made = updater::ReleaseRepository::init(dir / "releases", keys, updater::now_utc());
    REQUIRE(made.ok());
    repository.emplace(std::move(made).value());
    REQUIRE(repository->sign(updater::RoleName::root, key).ok());
  }
  // Version `version`: every weight moved by a step that grows with the version.
  weights::Weights version(std::uint64_t version) const {
    std::vector<float> values(initial.values().begin(), initial.values().end());
    for (std::size_t i = 0; i < values.size(); ++i) values[i] += 0.01f * static_cast<float>(version * (i % 5));
    return *weights::Weights::from_values(initial.layout(), version, std::move(values));
  }
  void publish(std::uint64_t v) {
    REQUIRE(repository->add(version(v), "logreg", 2, updater::now_utc()).ok());
    REQUIRE(repository->sign(updater::RoleName::targets, key).ok());
    REQUIRE(repository->publish(key, key, updater::now_utc()).ok());
  }
  client::ReleaseUpdateOptions update_options() const {
    client::ReleaseUpdateOptions options;
    options.state_dir = dir / "device";
    options.repository = (dir / "releases").string();
    options.trusted_root = dir / "releases" / "metadata" / "1.root.json";
    options.release_model = "logreg";
    options.make_model = [] { return inference::Model::open("logreg", 0); };
    return options;
  }
  std::unique_ptr<client::DeviceRuntime> runtime(client::ServeSource source = client::ServeSource::release) {
    client::RuntimeOptions options;
    options.state_dir = dir / "device";
    options.model = "logreg";
    options.serve.enabled = true;
    options.serve.source = source;
    auto runtime = client::DeviceRuntime::start(options);
    REQUIRE(runtime.ok());
    return std::move(runtime).value();
  }
};

}  // namespace shoal::testing
