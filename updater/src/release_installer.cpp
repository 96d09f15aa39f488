#include "shoal/updater/release_installer.h"

#include <algorithm>
#include <cmath>

#include "shoal/crypto/encoding.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/updater/rollout.h"
#include "shoal/weights/weights_file.h"

namespace shoal::updater {
namespace {

Error at_step(InstallStep step, const Error& error) {
  return make_error(error.code, "install step '" + std::string(step_name(step)) + "': " + error.message);
}

Status check_finite(const weights::Weights& weights) {
  const auto values = weights.values();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return make_error(ErrorCode::verification, "weight " + std::to_string(i) + " is not finite");
    }
  }
  return ok_status();
}

}  // namespace

Result<ReleaseFile> choose_file(const std::vector<ReleaseFile>& files, std::uint64_t version,
                                const std::optional<crypto::Blake2b256Digest>& active_hash) {
  const ReleaseFile* full = nullptr;
  const ReleaseFile* best_delta = nullptr;
  for (const ReleaseFile& file : files) {
    if (file.version != version) continue;
    if (file.kind == ReleaseFileKind::full) full = &file;
    if (file.kind == ReleaseFileKind::delta && active_hash && file.base_values_hash == *active_hash &&
        (!best_delta || file.length < best_delta->length)) {
      best_delta = &file;
    }
  }
  if (best_delta) return *best_delta;
  if (full) return *full;
  return make_error(ErrorCode::not_found, "version " + std::to_string(version) +
                                              " has no full file and no delta from the active model");
}

Result<std::optional<Rollout>> read_rollout(RepositoryFetcher& fetcher, TufClient& client, const std::string& model,
                                            UnixTime start_time) {
  const std::string path = rollout_target_path(model);
  auto found = client.find_target(fetcher, path, start_time);
  if (!found) return found.error();
  if (!*found) return std::optional<Rollout>();
  if ((*found)->file.length > kRolloutBytesLimit) {
    return make_error(ErrorCode::verification, path + " is longer than a rollout may be");
  }
  auto bytes = client.download_target(fetcher, path, (*found)->file);
  if (!bytes) return bytes.error();
  auto rollout = parse_rollout(*bytes, path);
  if (!rollout) return rollout.error();
  if (rollout->model != model) {
    return make_error(ErrorCode::verification, path + " is the rollout of model '" +
                                                   crypto::printable_text(rollout->model) + "'");
  }
  return std::optional<Rollout>(std::move(rollout).value());
}

std::string_view step_name(InstallStep step) {
  switch (step) {
    case InstallStep::refresh_metadata: return "refresh metadata";
    case InstallStep::choose_file: return "choose file";
    case InstallStep::download: return "download";
    case InstallStep::rebuild: return "rebuild weights";
    case InstallStep::smoke_test: return "smoke test";
    case InstallStep::stage: return "stage";
    case InstallStep::switch_active: return "switch active model";
  }
  return "?";
}

std::string failed_install_step(const Error& error) {
  constexpr std::string_view kPrefix = "install step '";
  if (!error.message.starts_with(kPrefix)) return "";
  const auto end = error.message.find('\'', kPrefix.size());
  if (end == std::string::npos) return "";
  return error.message.substr(kPrefix.size(), end - kPrefix.size());
}

Result<ReleaseDecision> decide_release(const std::vector<ReleaseFile>& files, const std::optional<Rollout>& rollout,
                                       const DeviceReleases& device, std::string_view device_key_hex) {
  ReleaseDecision decision;
  if (rollout && rollout->state == RolloutState::halted && device.active == rollout->version) {
    if (!device.has_previous) {
      return make_error(ErrorCode::invalid_argument, "the rollout of version " + std::to_string(rollout->version) +
                                                         " was halted, and this device has no previous model to "
                                                         "roll back to");
    }
    decision.action = ReleaseAction::roll_back;
    decision.version = rollout->version;
    return decision;
  }
  // The newest version this device may take: a rollout that has not reached it holds its version back.
  auto allowed = std::find_if(files.begin(), files.end(), [&](const ReleaseFile& file) {
    return !rollout || file.version != rollout->version || rollout_admits(*rollout, device_key_hex);
  });
  decision.outside_rollout = allowed != files.begin();
  if (allowed == files.end()) return decision;
  // Up to date, or ahead after a newer install: never go backwards.
  if (device.active && *device.active >= allowed->version) return decision;
  if (device.rolled_back && allowed->version <= *device.rolled_back) {
    decision.held_back = true;
    return decision;
  }
  decision.action = ReleaseAction::install;
  decision.version = allowed->version;
  return decision;
}

Result<InstallOutcome> install_latest_release(RepositoryFetcher& fetcher, TufClient& client, ModelStore& store,
                                              const InstallOptions& options) {
  auto done = [&](InstallStep step) {
    if (options.after_step) options.after_step(step);
  };
  auto targets = client.refresh(fetcher, options.start_time);
  if (!targets) return at_step(InstallStep::refresh_metadata, targets.error());
  done(InstallStep::refresh_metadata);

  auto files = release_files(*targets, options.model, "targets.json");
  if (!files) return at_step(InstallStep::choose_file, files.error());
  if (files->empty()) {
    return at_step(InstallStep::choose_file,
                   make_error(ErrorCode::not_found, "the repository has no release of model '" + options.model + "'"));
  }
  auto rollout = read_rollout(fetcher, client, options.model, options.start_time);
  if (!rollout) return at_step(InstallStep::choose_file, rollout.error());
  auto active = store.load_active();
  if (!active) return at_step(InstallStep::choose_file, active.error());
  InstallOutcome outcome;
  if (*active) outcome.previous_version = (*active)->version();
  const DeviceReleases held{*active ? std::optional<std::uint64_t>((*active)->version()) : std::nullopt,
                            store.previous().has_value(), store.rolled_back()};
  auto decision = decide_release(*files, *rollout, held, options.device_key_hex);
  if (!decision) return at_step(InstallStep::switch_active, decision.error());
  outcome.outside_rollout = decision->outside_rollout;
  outcome.held_back = decision->held_back;
  outcome.version = held.active.value_or(0);
  if (decision->action == ReleaseAction::stay) return outcome;
  if (decision->action == ReleaseAction::roll_back) {
    if (auto status = store.rollback(); !status) return at_step(InstallStep::switch_active, status.error());
    auto restored = store.load_active();
    if (!restored) return at_step(InstallStep::switch_active, restored.error());
    outcome.halted_rollback = decision->version;
    outcome.version = *restored ? (*restored)->version() : 0;
    return outcome;
  }
  const std::uint64_t newest = decision->version;
  std::optional<crypto::Blake2b256Digest> active_hash;
  if (*active) active_hash = values_hash(**active);
  auto file = choose_file(*files, newest, active_hash);
  if (!file) return at_step(InstallStep::choose_file, file.error());
  outcome.file = *file;
  if (options.on_attempt) options.on_attempt(file->version);
  done(InstallStep::choose_file);

  auto bytes = client.download_target(fetcher, file->path, targets->targets.at(file->path));
  if (!bytes) return at_step(InstallStep::download, bytes.error());
  done(InstallStep::download);

  // The rebuilt values must hash to what the targets metadata signed. A
  // delta's header names the hash its output is checked against, so
  // comparing the two is enough; a full file is hashed here.
  Result<weights::Weights> rebuilt = make_error(ErrorCode::corrupt, "not rebuilt");
  if (file->kind == ReleaseFileKind::delta) {
    auto info = read_delta_info(*bytes, file->path);
    if (!info) return at_step(InstallStep::rebuild, info.error());
    if (info->target_version != file->version || info->target_hash != file->values_hash) {
      return at_step(InstallStep::rebuild, make_error(ErrorCode::verification,
                                                      file->path + " builds a version other than the signed one"));
    }
    rebuilt = apply_delta(**active, *bytes, file->path);
  } else {
    rebuilt = weights::decode_weights(*bytes, file->path);
    if (rebuilt && (rebuilt->version() != file->version || values_hash(*rebuilt) != file->values_hash)) {
      return at_step(InstallStep::rebuild, make_error(ErrorCode::verification,
                                                      file->path + " holds a version other than the signed one"));
    }
  }
  if (!rebuilt) return at_step(InstallStep::rebuild, rebuilt.error());
  done(InstallStep::rebuild);

  if (auto status = check_finite(*rebuilt); !status) return at_step(InstallStep::smoke_test, status.error());
  if (options.smoke_test) {
    if (auto status = options.smoke_test(*rebuilt); !status) return at_step(InstallStep::smoke_test, status.error());
  }
  done(InstallStep::smoke_test);

  auto staged = store.stage(*rebuilt);
  if (!staged) return at_step(InstallStep::stage, staged.error());
  done(InstallStep::stage);

  if (auto status = store.activate(*staged); !status) return at_step(InstallStep::switch_active, status.error());
  done(InstallStep::switch_active);
  outcome.installed = true;
  outcome.version = rebuilt->version();
  return outcome;
}

}  // namespace shoal::updater
