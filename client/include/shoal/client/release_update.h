// The agent's side of model releases: `shoal-agent update` and `rollback`,
// and the scheduled check of `shoal-agent run`. The TUF client, the model
// store and the installer are in updater/; this adds what needs the model:
// the smoke test, which loads a release into the device's model and runs
// it on a probe input before the release may become active.
//
// The repository is a directory (local or mounted), an http(s) URL (any
// static file server holding the repository's directory), or the one the
// agent's aggregator serves on its socket.
//
// State lives under the agent's state directory: release/trust/ (the
// trusted TUF metadata) and release/models/ (the active and previous model).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"
#include "shoal/inference/model.h"
#include "shoal/updater/release_installer.h"

namespace shoal::client {

// How to reach the aggregator, for a repository it serves.
struct AggregatorLink {
  crypto::IdentityKeyPair device;
  crypto::PublicIdentity server;
  std::string endpoint;
};

// The word that names the aggregator's repository instead of a directory.
inline constexpr std::string_view kAggregatorRepository = "aggregator";

struct ReleaseUpdateOptions {
  std::filesystem::path state_dir;
  std::string repository;               // a directory, an http(s) URL, or "aggregator"
  std::optional<AggregatorLink> aggregator;  // needed for "aggregator"
  std::filesystem::path trusted_root;   // the operator's root.json; used while the device trusts none
  std::filesystem::path ca_file;        // CAs for an https repository; empty: the system's
  std::string targets_url;              // where targets/ is served from, if not the repository: a URL or directory
  std::string release_model;            // the model's name in the repository
  std::string device_key_hex;           // places the device in rollout stages; empty: the aggregator link's key
  std::function<Result<inference::Model>()> make_model;  // a fresh model for the smoke test
  std::function<void(updater::InstallStep)> after_step;  // fault injection in tests
  std::function<void(std::uint64_t)> on_attempt;         // the version an install tries, once chosen
};

// The fetcher for `repository`: a directory path, an http(s) URL, or "aggregator" over `aggregator`;
// with `targets_url` (a URL or directory), target files come from there.
// With `partial_dir`, an HTTP download cut off by a restart resumes from what was kept there.
Result<std::unique_ptr<updater::RepositoryFetcher>> open_repository(const std::string& repository,
                                                                    const std::optional<AggregatorLink>& aggregator,
                                                                    const std::filesystem::path& ca_file = {},
                                                                    const std::string& targets_url = {},
                                                                    const std::filesystem::path& partial_dir = {});

// Where an agent keeps HTTP downloads in progress, under its state directory.
inline std::filesystem::path release_partial_dir(const std::filesystem::path& state_dir) {
  return state_dir / "release" / "partial";
}

// Loads `weights` into `model`, runs a batch of probe inputs and refuses
// non-finite outputs.
Status smoke_test(inference::Model model, const weights::Weights& weights);

// Installs the newest release if there is one; the active model is kept on any failure.
Result<updater::InstallOutcome> update_from_release(const ReleaseUpdateOptions& options);

// An install's outcome in words, for logs: "installed ...; version 3 is active, ...".
std::string describe_install(const updater::InstallOutcome& outcome);

// Makes the previous release model active again; returns its version.
Result<std::uint64_t> roll_back_release(const std::filesystem::path& state_dir);

// The release state in words: active and previous versions, a rollback,
// the trusted metadata versions.
Result<std::string> describe_release_state(const std::filesystem::path& state_dir);

// The active release model's file, if one is installed.
std::optional<std::filesystem::path> active_release_model(const std::filesystem::path& state_dir);

}  // namespace shoal::client
