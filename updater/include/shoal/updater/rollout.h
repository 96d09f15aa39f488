// A staged rollout of one model version: which devices may install it now.
//
// The rollout is a small JSON document, the target "rollout/<model>.json"
// of the delegated role "rollout", whose key is an online key: stages can
// advance or halt without the offline targets key, and devices trust the
// document only as far as TUF trusts that role.
//
//   {"model": "cnn", "version": 12, "stage": 1, "state": "active",
//    "stages": [{"group": "canary", "devices": ["<ed25519 hex>", ...]}, {"percent": 1}, {"percent": 10}],
//    "soak_s": 3600, "stage_started": "2027-01-15T08:00:00Z", "reason": ""}
//
// A stage is a named group of devices (listed by key, from the enrolment
// list's group=NAME entries) or a percentage of the fleet. A device is in a
// percentage when its stable bucket, from the SHA-256 of the model and its
// key, is below it; so the devices of 1% are among those of 10%. Stages
// accumulate: stage k admits every device an earlier stage admitted.
//
// The rollout governs its version only: older versions and newer ones are
// installed as before. A halted rollout admits no one, and a device that
// runs the halted version rolls back to its previous model.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoal/base/result.h"
#include "shoal/updater/tuf_metadata.h"

namespace shoal::updater {

inline constexpr std::string_view kRolloutRole = "rollout";
inline constexpr std::uint64_t kRolloutBytesLimit = 4 << 20;

struct RolloutStage {
  double percent = 0;                // of the fleet, when `group` is empty
  std::string group;                 // a named group of devices
  std::vector<std::string> devices;  // the group's device keys, ed25519 hex
};

enum class RolloutState { active, halted, complete };
std::string_view rollout_state_name(RolloutState state);

struct Rollout {
  std::string model;
  std::uint64_t version = 0;
  std::vector<RolloutStage> stages;
  std::size_t stage = 0;  // the current stage, an index into stages
  RolloutState state = RolloutState::active;
  std::int64_t soak_s = 0;  // how long a stage runs before it may advance
  UnixTime stage_started = 0;
  std::string reason;  // why it was halted
};

// "rollout/cnn.json"
std::string rollout_target_path(std::string_view model);

nlohmann::json to_json(const Rollout& rollout);
// Checks every field; `source` names the document in errors.
Result<Rollout> parse_rollout(std::span<const std::uint8_t> bytes, std::string_view source);

// Parses "canary,1,10,50,100": numbers are percentages (0 < p ≤ 100,
// never falling), other words group names.
Result<std::vector<RolloutStage>> parse_rollout_stages(std::string_view text);

// The device's stable place in [0, 10000) for `model`.
std::uint32_t rollout_bucket(std::string_view model, std::string_view device_key_hex);

// Whether the device with `device_key_hex` (empty: a device without a
// key, which only a 100% stage admits) is in the current stage or an
// earlier one. A halted rollout admits no one; a complete one everyone.
bool rollout_admits(const Rollout& rollout, std::string_view device_key_hex);

// The rollout's state in words, one line per stage, the current one marked.
std::string describe_rollout(const Rollout& rollout, UnixTime now);

}  // namespace shoal::updater
