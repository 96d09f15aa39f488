#include "shoal/aggregator/checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "shoal/base/durable_file.h"
#include "shoal/weights/weights_file.h"

namespace shoal::aggregator {
namespace fs = std::filesystem;
namespace {

constexpr int kFormat = 1;
constexpr std::size_t kMaxIndexBytes = 64 * 1024;

std::string versioned(const std::string& stem, std::uint64_t version, const std::string& suffix = "") {
  return stem + "-v" + std::to_string(version) + suffix + ".weights";
}

Error damaged(const fs::path& path, const std::string& why) {
  return make_error(ErrorCode::corrupt, path.string() + ": " + why);
}

// A file named by checkpoint.json: a plain name inside the state directory.
fs::path member(const fs::path& dir, const nlohmann::json& index, const char* key) {
  const auto name = index.at(key).get<std::string>();
  if (name.empty() || name.find('/') != std::string::npos || name.starts_with(".")) {
    throw std::invalid_argument(std::string(key) + " names '" + name + "', not a file in the state directory");
  }
  return dir / name;
}

// A count: nlohmann would read -5 as 2^64 - 5.
std::uint64_t count(const nlohmann::json& index, const char* key) {
  const auto& value = index.at(key);
  if (!value.is_number_unsigned()) {
    throw std::invalid_argument(std::string(key) + " is " + value.dump() + ", not a count (an integer >= 0)");
  }
  return value.get<std::uint64_t>();
}

// Writes `weights` and reads the file back: a checkpoint names only files
// known to hold what was meant, so the one before it is never pruned for a
// successor that cannot be loaded.
Status write_verified(const fs::path& path, const weights::Weights& weights, base::Env& env) {
  if (auto status = weights::write_weights_file(path, weights, env); !status) return status;
  auto back = weights::read_weights_file(path);
  if (!back) return make_error(back.error().code, "checkpoint file did not read back: " + back.error().message);
  const bool same = back->version() == weights.version() && back->layout() == weights.layout() &&
                    std::memcmp(back->values().data(), weights.values().data(), weights.values().size_bytes()) == 0;
  if (!same) return make_error(ErrorCode::io, path.string() + " did not read back as written");
  return ok_status();
}

// Moments are stored as weights files in the layout of the model's
// parameters (server optimisers do not step buffers).
Status write_moment(const fs::path& path, const weights::Weights& global, std::span<const float> values,
                    base::Env& env) {
  auto moment = weights::Weights::from_values(global.layout().parameter_layout(), global.version(),
                                              {values.begin(), values.end()});
  if (!moment) return moment.error();
  return write_verified(path, *moment, env);
}

Result<std::vector<float>> read_moment(const fs::path& path, const weights::Weights& global) {
  auto moment = weights::read_weights_file(path);
  if (!moment) return moment.error();
  if (moment->layout() != global.layout().parameter_layout() || moment->version() != global.version()) {
    return damaged(path, "does not belong to global model version " + std::to_string(global.version()));
  }
  return std::vector<float>(moment->values().begin(), moment->values().end());
}

nlohmann::json privacy_json(const PrivacyState& privacy) {
  return {{"orders", privacy.orders}, {"rdp", privacy.rdp}, {"clip_norm", privacy.clip_norm}};
}

PrivacyState read_privacy(const nlohmann::json& json) {
  PrivacyState privacy{json.at("orders").get<std::vector<double>>(), json.at("rdp").get<std::vector<double>>(),
                       json.at("clip_norm").get<double>()};
  if (privacy.orders.empty() || privacy.orders.size() != privacy.rdp.size()) {
    throw std::invalid_argument("privacy: " + std::to_string(privacy.orders.size()) + " RDP orders but " +
                                std::to_string(privacy.rdp.size()) + " RDP values");
  }
  for (std::size_t k = 0; k < privacy.orders.size(); ++k) {
    if (!(privacy.orders[k] > 1) || !(privacy.rdp[k] >= 0) || !std::isfinite(privacy.rdp[k])) {
      throw std::invalid_argument("privacy: RDP " + json.at("rdp")[k].dump() + " at order " +
                                  json.at("orders")[k].dump() + " (orders exceed 1, RDP is finite and not negative)");
    }
  }
  if (!(privacy.clip_norm >= 0) || !std::isfinite(privacy.clip_norm)) {
    throw std::invalid_argument("privacy: clip_norm " + json.at("clip_norm").dump() + " is not a norm");
  }
  return privacy;
}

// Removes weights files of the checkpoint family that `keep` does not name,
// and temporary files a crash left behind. Best effort: what stays is
// removed after the next checkpoint.
void remove_stale(const fs::path& dir, const std::vector<std::string>& keep, base::Env& env) {
  auto names = env.list_directory(dir);
  if (!names) return;
  for (const auto& name : *names) {
    const bool ours = (name.starts_with("global-v") || name.starts_with("moments-v")) && name.ends_with(".weights");
    const bool stale = (ours && std::find(keep.begin(), keep.end(), name) == keep.end()) ||
                       base::is_temporary_file_name(name);
    if (stale) (void)env.remove_file(dir / name);
  }
}

}  // namespace

Status write_checkpoint(const fs::path& state_dir, const CheckpointView& checkpoint, base::Env& env) {
  if (auto status = env.create_directories(state_dir); !status) return status;
  const auto version = checkpoint.global.version();
  nlohmann::json index = {{"format", kFormat},
                          {"model_version", version},
                          {"rounds_started", checkpoint.rounds_started},
                          {"strategy", checkpoint.strategy},
                          {"global", versioned("global", version)}};
  std::vector<std::string> keep = {versioned("global", version)};
  if (auto status = write_verified(state_dir / keep.back(), checkpoint.global, env); !status) return status;
  const std::pair<const char*, std::span<const float>> moments[] = {{"first", checkpoint.first_moment},
                                                                    {"second", checkpoint.second_moment}};
  for (const auto& [which, values] : moments) {
    if (values.empty()) continue;
    keep.push_back(versioned("moments", version, std::string("-") + which));
    if (auto status = write_moment(state_dir / keep.back(), checkpoint.global, values, env); !status) return status;
    index[std::string(which) + "_moment"] = keep.back();
  }
  if (checkpoint.privacy) index["privacy"] = privacy_json(*checkpoint.privacy);
  if (auto status = base::write_file_durably(state_dir / "checkpoint.json", index.dump(2) + "\n", 0644, env);
      !status) {
    return status;
  }
  remove_stale(state_dir, keep, env);  // only now: the index names verified files
  return ok_status();
}

Result<std::optional<Checkpoint>> read_checkpoint(const fs::path& state_dir, base::Env& env) {
  const auto index_path = state_dir / "checkpoint.json";
  auto text = base::read_file(index_path, kMaxIndexBytes, env);
  if (!text && text.error().code == ErrorCode::not_found) return std::optional<Checkpoint>();
  if (!text) return text.error();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(*text);
    if (index.at("format").get<int>() != kFormat) {
      return damaged(index_path, "format " + index.at("format").dump() + " is not " + std::to_string(kFormat));
    }
    auto global = weights::read_weights_file(member(state_dir, index, "global"));
    if (!global) return global.error();
    if (global->version() != count(index, "model_version")) {
      return damaged(index_path, "names model version " + index.at("model_version").dump() + " but " +
                                     index.at("global").get<std::string>() + " holds version " +
                                     std::to_string(global->version()));
    }
    Checkpoint checkpoint{std::move(global).value(), count(index, "rounds_started"),
                          index.at("strategy").get<std::string>(), {}, {}, std::nullopt};
    if (index.contains("privacy")) checkpoint.privacy = read_privacy(index.at("privacy"));
    for (auto [key, target] : {std::pair{"first_moment", &checkpoint.first_moment},
                               std::pair{"second_moment", &checkpoint.second_moment}}) {
      if (!index.contains(key)) continue;
      auto moment = read_moment(member(state_dir, index, key), checkpoint.global);
      if (!moment) return moment.error();
      *target = std::move(moment).value();
    }
    return std::optional<Checkpoint>(std::move(checkpoint));
  } catch (const nlohmann::json::exception& e) {
    return damaged(index_path, std::string("malformed: ") + e.what());
  } catch (const std::invalid_argument& e) {
    return damaged(index_path, e.what());
  }
}

}  // namespace shoal::aggregator
