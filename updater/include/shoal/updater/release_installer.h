// Installs the newest release of a model on a device: refresh the TUF
// metadata, choose the delta whose base is the active model (else the full
// file), download it within its signed length, rebuild the weights, check
// them against the signed values hash, smoke-test them, and switch the
// active model, keeping the previous one.
//
// A staged rollout (rollout.h) of the newest version holds it back from a
// device outside the current stage, which then takes the newest version
// before it; a halted rollout makes a device that runs its version roll
// back to the previous model.
//
// Any failure leaves the active model as it was and names the step that
// failed. The steps are numbered so that tests can stop the process after
// each one (after_step) and check that what is left on disk still loads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/updater/model_store.h"
#include "shoal/updater/release_file.h"
#include "shoal/updater/repository_fetcher.h"
#include "shoal/updater/rollout.h"
#include "shoal/updater/tuf_client.h"
#include "shoal/weights/weights.h"

namespace shoal::updater {

enum class InstallStep { refresh_metadata, choose_file, download, rebuild, smoke_test, stage, switch_active };
inline constexpr InstallStep kLastInstallStep = InstallStep::switch_active;
std::string_view step_name(InstallStep step);

struct InstallOptions {
  std::string model;        // the model name the release must carry
  UnixTime start_time = 0;  // expiry is judged against it
  // Loads the weights into the device's model and runs it on a probe input;
  // an error rejects the release. Non-finite weights are rejected before it.
  std::function<Status(const weights::Weights&)> smoke_test;
  // Called when each step has completed.
  std::function<void(InstallStep)> after_step;
  // Called with the version chosen for install, before it is downloaded.
  std::function<void(std::uint64_t)> on_attempt;
  // The device's key (ed25519, hex) that places it in rollout stages; empty:
  // only a rollout's 100% stage includes it.
  std::string device_key_hex;
};

struct InstallOutcome {
  bool installed = false;                   // false: already up to date, or held back
  bool held_back = false;                   // the newest version is one this device rolled back from
  bool outside_rollout = false;             // the newest version's rollout has not reached this device
  std::optional<std::uint64_t> halted_rollback;  // rolled back from this version, whose rollout was halted
  std::optional<std::uint64_t> previous_version;
  std::uint64_t version = 0;                // the active version afterwards
  std::optional<ReleaseFile> file;          // what was downloaded
};

// What a release check does, decided from the model's listed files
// (newest first), its rollout and what the device holds; no I/O, so the
// agent and the fleet simulator decide alike.
enum class ReleaseAction { stay, install, roll_back };
struct DeviceReleases {
  std::optional<std::uint64_t> active;       // the version it runs
  bool has_previous = false;                 // whether it keeps a model to roll back to
  std::optional<std::uint64_t> rolled_back;  // the version it last rolled back from
};
struct ReleaseDecision {
  ReleaseAction action = ReleaseAction::stay;
  std::uint64_t version = 0;     // install: the version to take; roll_back: the halted one left
  bool outside_rollout = false;  // the newest version's rollout has not reached the device
  bool held_back = false;        // the newest it may take is one it rolled back from
};
// An error when the device runs a halted version and has nothing to roll back to.
Result<ReleaseDecision> decide_release(const std::vector<ReleaseFile>& files, const std::optional<Rollout>& rollout,
                                       const DeviceReleases& device, std::string_view device_key_hex);

// The file to download for `version`: the smallest delta from the active model (by values hash) if one is listed, else the full file.
Result<ReleaseFile> choose_file(const std::vector<ReleaseFile>& files, std::uint64_t version,
                                const std::optional<crypto::Blake2b256Digest>& active_hash);

// The model's rollout, if the repository signs one through its delegations.
Result<std::optional<Rollout>> read_rollout(RepositoryFetcher& fetcher, TufClient& client, const std::string& model,
                                            UnixTime start_time);

// Where a device agent keeps its release state under its state directory.
inline std::filesystem::path release_trust_dir(const std::filesystem::path& state_dir) {
  return state_dir / "release" / "trust";
}
inline std::filesystem::path release_models_dir(const std::filesystem::path& state_dir) {
  return state_dir / "release" / "models";
}

// The step an install_latest_release() error names ("smoke test"), or "" for another error.
std::string failed_install_step(const Error& error);

Result<InstallOutcome> install_latest_release(RepositoryFetcher& fetcher, TufClient& client, ModelStore& store,
                                              const InstallOptions& options);

}  // namespace shoal::updater
