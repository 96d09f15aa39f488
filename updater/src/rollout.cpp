#include "shoal/updater/rollout.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "shoal/crypto/encoding.h"
#include "shoal/crypto/hash.h"

namespace shoal::updater {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxStages = 64;
constexpr std::size_t kMaxGroupBytes = 64;

Error bad(std::string_view source, const std::string& problem) {
  return make_error(ErrorCode::corrupt, std::string(source) + ": " + problem);
}

bool valid_group_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxGroupBytes && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

bool valid_device_key(std::string_view hex) {
  return hex.size() == 64 && hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Result<RolloutState> parse_state(std::string_view text, std::string_view source) {
  for (RolloutState state : {RolloutState::active, RolloutState::halted, RolloutState::complete}) {
    if (rollout_state_name(state) == text) return state;
  }
  return bad(source, "state '" + crypto::printable_text(text) + "' is not active, halted or complete");
}

std::string stage_name(const RolloutStage& stage) {
  if (!stage.group.empty()) return "group " + stage.group + " (" + std::to_string(stage.devices.size()) + " devices)";
  char text[32];
  std::snprintf(text, sizeof text, "%g%%", stage.percent);
  return text;
}

}  // namespace

std::string_view rollout_state_name(RolloutState state) {
  switch (state) {
    case RolloutState::active: return "active";
    case RolloutState::halted: return "halted";
    case RolloutState::complete: return "complete";
  }
  return "?";
}

std::string rollout_target_path(std::string_view model) { return "rollout/" + std::string(model) + ".json"; }

json to_json(const Rollout& rollout) {
  json stages = json::array();
  for (const auto& stage : rollout.stages) {
    if (stage.group.empty()) {
      stages.push_back(json{{"percent", stage.percent}});
    } else {
      stages.push_back(json{{"group", stage.group}, {"devices", stage.devices}});
    }
  }
  return json{{"model", rollout.model},
              {"version", rollout.version},
              {"stages", stages},
              {"stage", rollout.stage},
              {"state", rollout_state_name(rollout.state)},
              {"soak_s", rollout.soak_s},
              {"stage_started", format_utc(rollout.stage_started)},
              {"reason", rollout.reason}};
}

Result<Rollout> parse_rollout(std::span<const std::uint8_t> bytes, std::string_view source) {
  json document = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) return bad(source, "not a JSON object");
  Rollout rollout;
  auto text = [&](const char* name) -> Result<std::string> {
    auto found = document.find(name);
    if (found == document.end() || !found->is_string()) return bad(source, std::string(name) + " must be a string");
    return found->get<std::string>();
  };
  auto number = [&](const char* name) -> Result<std::uint64_t> {
    auto found = document.find(name);
    if (found == document.end() || !found->is_number_unsigned()) {
      return bad(source, std::string(name) + " must be a non-negative integer");
    }
    return found->get<std::uint64_t>();
  };
  auto model = text("model");
  if (!model) return model.error();
  rollout.model = *model;
  auto version = number("version");
  if (!version) return version.error();
  rollout.version = *version;
  auto stages = document.find("stages");
  if (stages == document.end() || !stages->is_array() || stages->empty() || stages->size() > kMaxStages) {
    return bad(source, "stages must be an array of 1 to 64 stages");
  }
  double last_percent = 0;
  for (const auto& entry : *stages) {
    const std::string where = "stages[" + std::to_string(rollout.stages.size()) + "]";
    if (!entry.is_object()) return bad(source, where + " must be an object");
    RolloutStage stage;
    if (entry.contains("group")) {
      if (!entry["group"].is_string() || !valid_group_name(entry["group"].get<std::string>())) {
        return bad(source, where + ".group must be 1 to 64 of a-z, 0-9, '-' and '_'");
      }
      stage.group = entry["group"].get<std::string>();
      if (!entry.contains("devices") || !entry["devices"].is_array()) {
        return bad(source, where + ".devices must be an array of device keys");
      }
      for (const auto& key : entry["devices"]) {
        if (!key.is_string() || !valid_device_key(key.get<std::string>())) {
          return bad(source, where + ".devices must hold ed25519 keys as 64 lower-case hex digits");
        }
        stage.devices.push_back(key.get<std::string>());
      }
    } else {
      if (!entry.contains("percent") || !entry["percent"].is_number()) {
        return bad(source, where + " needs a group or a percent");
      }
      stage.percent = entry["percent"].get<double>();
      if (!(stage.percent > 0 && stage.percent <= 100) || stage.percent < last_percent) {
        return bad(source, where + ".percent must be in (0, 100] and never fall");
      }
      last_percent = stage.percent;
    }
    rollout.stages.push_back(std::move(stage));
  }
  auto stage = number("stage");
  if (!stage) return stage.error();
  if (*stage >= rollout.stages.size()) return bad(source, "stage " + std::to_string(*stage) + " is past the last stage");
  rollout.stage = *stage;
  auto state = text("state");
  if (!state) return state.error();
  auto parsed_state = parse_state(*state, source);
  if (!parsed_state) return parsed_state.error();
  rollout.state = *parsed_state;
  auto soak = number("soak_s");
  if (!soak) return soak.error();
  rollout.soak_s = static_cast<std::int64_t>(std::min<std::uint64_t>(*soak, std::uint64_t{1} << 40));
  auto started = text("stage_started");
  if (!started) return started.error();
  auto started_time = parse_utc(*started, std::string(source) + ": stage_started");
  if (!started_time) return started_time.error();
  rollout.stage_started = *started_time;
  auto reason = text("reason");
  if (!reason) return reason.error();
  rollout.reason = reason->substr(0, 1024);
  return rollout;
}

Result<std::vector<RolloutStage>> parse_rollout_stages(std::string_view text) {
  std::vector<RolloutStage> stages;
  double last_percent = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string_view word = text.substr(start, end - start);
    start = end + 1;
    RolloutStage stage;
    double percent = 0;
    const auto [parsed_end, error] = std::from_chars(word.data(), word.data() + word.size(), percent);
    if (error == std::errc() && parsed_end == word.data() + word.size()) {
      if (!(percent > 0 && percent <= 100) || percent < last_percent) {
        return make_error(ErrorCode::invalid_argument, "stage '" + std::string(word) +
                                                           "': percentages must be in (0, 100] and never fall");
      }
      stage.percent = last_percent = percent;
    } else if (valid_group_name(word)) {
      stage.group = std::string(word);
    } else {
      return make_error(ErrorCode::invalid_argument,
                        "stage '" + crypto::printable_text(word) +
                            "' is neither a percentage nor a group name (a-z, 0-9, '-' and '_')");
    }
    stages.push_back(std::move(stage));
    if (stages.size() > kMaxStages) return make_error(ErrorCode::invalid_argument, "at most 64 stages");
  }
  return stages;
}

std::uint32_t rollout_bucket(std::string_view model, std::string_view device_key_hex) {
  const auto digest = crypto::sha256("shoal-rollout/" + std::string(model) + "/" + std::string(device_key_hex));
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | digest[i];
  return static_cast<std::uint32_t>(value % 10000);
}

bool rollout_admits(const Rollout& rollout, std::string_view device_key_hex) {
  if (rollout.state == RolloutState::halted) return false;
  if (rollout.state == RolloutState::complete) return true;
  const std::uint32_t bucket = device_key_hex.empty() ? 10000 : rollout_bucket(rollout.model, device_key_hex);
  for (std::size_t i = 0; i <= rollout.stage && i < rollout.stages.size(); ++i) {
    const RolloutStage& stage = rollout.stages[i];
    if (!stage.group.empty()) {
      if (std::find(stage.devices.begin(), stage.devices.end(), device_key_hex) != stage.devices.end()) return true;
    } else if (stage.percent >= 100 || bucket < static_cast<std::uint32_t>(std::lround(stage.percent * 100))) {
      return true;
    }
  }
  return false;
}

std::string describe_rollout(const Rollout& rollout, UnixTime now) {
  std::string text = rollout.model + " version " + std::to_string(rollout.version) + ": " +
                     std::string(rollout_state_name(rollout.state));
  if (rollout.state == RolloutState::halted && !rollout.reason.empty()) {
    text += " (" + crypto::printable_text(rollout.reason) + ")";
  }
  text += "\n";
  for (std::size_t i = 0; i < rollout.stages.size(); ++i) {
    text += (i == rollout.stage ? "  > stage " : "    stage ") + std::to_string(i + 1) + ": " +
            stage_name(rollout.stages[i]);
    if (i == rollout.stage && rollout.state == RolloutState::active) {
      const std::int64_t ran = now - rollout.stage_started;
      text += ", running " + std::to_string(ran) + " s of a " + std::to_string(rollout.soak_s) + " s soak";
    }
    text += "\n";
  }
  return text;
}

}  // namespace shoal::updater
