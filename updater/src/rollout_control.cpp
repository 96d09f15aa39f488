#include "shoal/updater/rollout_control.h"

#include <algorithm>

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/updater/release_file.h"

namespace shoal::updater {
namespace {

Status check_keys(const OnlineKeys& keys) {
  if (!keys.rollout || !keys.snapshot || !keys.timestamp) {
    return make_error(ErrorCode::invalid_argument, "a rollout change needs the rollout, snapshot and timestamp keys");
  }
  return ok_status();
}

Result<Rollout> write_rollout(ReleaseRepository& repository, const Rollout& rollout, const OnlineKeys& keys,
                              UnixTime now) {
  if (auto status = check_keys(keys); !status) return status.error();
  const std::string role(kRolloutRole);
  // The key is checked before anything is written, so a refused change leaves the document as it was.
  auto delegation = repository.delegation_of(role);
  if (!delegation) {
    return make_error(ErrorCode::not_found, "no role 'rollout' is delegated: delegate 'rollout/*' to it with its "
                                            "online key first");
  }
  const auto& ids = delegation->second.keys.keyids;
  if (std::find(ids.begin(), ids.end(), key_id(keys.rollout->public_identity().ed25519())) == ids.end()) {
    return make_error(ErrorCode::permission, "the key given is not one of the keys " + delegation->first +
                                                 " delegates role 'rollout' to");
  }
  const std::string text = to_json(rollout).dump(1) + "\n";
  if (auto status = repository.add_target(role, rollout_target_path(rollout.model), base::text_bytes(text),
                                          nlohmann::json::object(), now);
      !status) {
    return status.error();
  }
  if (auto status = repository.sign_delegated(role, *keys.rollout); !status) return status.error();
  if (auto status = repository.publish_delegated(role, *keys.snapshot, *keys.timestamp, now); !status) {
    return status.error();
  }
  return rollout;
}

Result<Rollout> existing_rollout(const ReleaseRepository& repository, const std::string& model) {
  auto rollout = current_rollout(repository, model);
  if (!rollout) return rollout.error();
  if (!*rollout) return make_error(ErrorCode::not_found, "model '" + model + "' has no rollout");
  return std::move(**rollout);
}

}  // namespace

Result<std::optional<Rollout>> current_rollout(const ReleaseRepository& repository, const std::string& model) {
  const auto path = repository.dir() / "targets" / rollout_target_path(model);
  auto bytes = base::read_file(path, kRolloutBytesLimit);
  if (!bytes) {
    if (bytes.error().code == ErrorCode::not_found) return std::optional<Rollout>();
    return bytes.error();
  }
  auto rollout = parse_rollout(base::text_bytes(*bytes), path.string());
  if (!rollout) return rollout.error();
  return std::optional<Rollout>(std::move(rollout).value());
}

Result<Rollout> start_rollout(ReleaseRepository& repository, const std::string& model, std::uint64_t version,
                              std::vector<RolloutStage> stages, std::int64_t soak_s, const OnlineKeys& keys,
                              UnixTime now) {
  auto files = release_files(repository.staged_targets(), model, "targets.json");
  if (!files) return files.error();
  const bool released = std::any_of(files->begin(), files->end(),
                                    [&](const ReleaseFile& file) { return file.version == version; });
  if (!released) {
    return make_error(ErrorCode::not_found,
                      model + " version " + std::to_string(version) + " is not released: add and publish it first");
  }
  if (stages.empty()) return make_error(ErrorCode::invalid_argument, "a rollout needs at least one stage");
  if (soak_s < 0) return make_error(ErrorCode::invalid_argument, "the soak time cannot be negative");
  Rollout rollout;
  rollout.model = model;
  rollout.version = version;
  rollout.stages = std::move(stages);
  rollout.soak_s = soak_s;
  rollout.stage_started = now;
  return write_rollout(repository, rollout, keys, now);
}

Result<Rollout> advance_rollout(ReleaseRepository& repository, const std::string& model, bool force,
                                const OnlineKeys& keys, UnixTime now) {
  auto rollout = existing_rollout(repository, model);
  if (!rollout) return rollout.error();
  if (rollout->state != RolloutState::active) {
    return make_error(ErrorCode::invalid_argument, "the rollout of " + model + " version " +
                                                       std::to_string(rollout->version) + " is " +
                                                       std::string(rollout_state_name(rollout->state)) +
                                                       ": only an active rollout advances");
  }
  const std::int64_t soaked = now - rollout->stage_started;
  if (!force && soaked < rollout->soak_s) {
    return make_error(ErrorCode::invalid_argument,
                      "stage " + std::to_string(rollout->stage + 1) + " has run " + std::to_string(soaked) +
                          " s of its " + std::to_string(rollout->soak_s) + " s soak (--force advances anyway)");
  }
  if (rollout->stage + 1 == rollout->stages.size()) {
    rollout->state = RolloutState::complete;
  } else {
    ++rollout->stage;
  }
  rollout->stage_started = now;
  return write_rollout(repository, *rollout, keys, now);
}

Result<Rollout> halt_rollout(ReleaseRepository& repository, const std::string& model, const std::string& reason,
                             const OnlineKeys& keys, UnixTime now) {
  auto rollout = existing_rollout(repository, model);
  if (!rollout) return rollout.error();
  if (rollout->state == RolloutState::halted) return *rollout;  // halting twice changes nothing
  rollout->state = RolloutState::halted;
  rollout->reason = reason.substr(0, 1024);
  return write_rollout(repository, *rollout, keys, now);
}

}  // namespace shoal::updater
