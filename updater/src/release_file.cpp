#include "shoal/updater/release_file.h"

#include <algorithm>
#include <cstdio>

#include "shoal/crypto/encoding.h"

namespace shoal::updater {

std::string ReleaseFile::describe() const {
  char size[32];
  std::snprintf(size, sizeof size, "%.2f MB", length / 1e6);
  return model + " version " + std::to_string(version) +
         (lossy_error_bound.empty() ? "" : " (lossy, within " + lossy_error_bound + ")") +
         (kind == ReleaseFileKind::delta ? " (delta from " + std::to_string(base_version) + ", " + size + ")"
                                         : std::string(" (full file, ") + size + ")");
}

nlohmann::json release_custom(const ReleaseFile& file) {
  nlohmann::json custom{{"model", file.model},
                        {"model_version", file.version},
                        {"values_blake2b", crypto::to_hex(file.values_hash)}};
  if (!file.lossy_error_bound.empty()) custom["lossy_error_bound"] = file.lossy_error_bound;
  if (file.kind == ReleaseFileKind::full) {
    custom["kind"] = "full";
    custom["codec"] = kFullCodec;
  } else {
    custom["kind"] = "delta";
    custom["codec"] = kDeltaCodec;
    custom["base_version"] = file.base_version;
    custom["base_values_blake2b"] = crypto::to_hex(file.base_values_hash);
  }
  return custom;
}

Result<ReleaseFile> parse_release_file(const std::string& path, const TargetFile& target, std::string_view source) {
  const auto& custom = target.custom;
  auto bad = [&](std::string_view problem) {
    return make_error(ErrorCode::corrupt,
                      std::string(source) + ": target '" + path + "' custom metadata: " + std::string(problem));
  };
  auto text = [&](const char* key) -> std::string {
    auto found = custom.find(key);
    return found != custom.end() && found->is_string() ? found->get<std::string>() : std::string();
  };
  auto number = [&](const char* key) -> std::optional<std::uint64_t> {
    auto found = custom.find(key);
    if (found == custom.end() || !found->is_number_integer() || found->get<std::int64_t>() < 0) return std::nullopt;
    return found->get<std::uint64_t>();
  };
  ReleaseFile file;
  file.path = path;
  file.length = target.length;
  file.model = text("model");
  const auto version = number("model_version");
  if (file.model.empty() || !version) return bad("needs a model name and a model_version");
  file.version = *version;
  auto values = crypto::array_from_hex<crypto::kBlake2b256Bytes>(text("values_blake2b"), "values_blake2b");
  if (!values) return bad("values_blake2b is not 32 bytes of hex");
  file.values_hash = *values;
  file.lossy_error_bound = text("lossy_error_bound");
  const std::string kind = text("kind"), codec = text("codec");
  if (kind == "full") {
    if (codec != kFullCodec) return bad("codec '" + codec + "' is not " + std::string(kFullCodec));
    file.kind = ReleaseFileKind::full;
  } else if (kind == "delta") {
    if (codec != kDeltaCodec) return bad("codec '" + codec + "' is not " + std::string(kDeltaCodec));
    file.kind = ReleaseFileKind::delta;
    const auto base = number("base_version");
    auto base_hash = crypto::array_from_hex<crypto::kBlake2b256Bytes>(text("base_values_blake2b"), "base");
    if (!base || !base_hash) return bad("a delta needs base_version and base_values_blake2b");
    file.base_version = *base;
    file.base_values_hash = *base_hash;
  } else {
    return bad("kind '" + kind + "' is neither full nor delta");
  }
  return file;
}

Result<std::vector<ReleaseFile>> release_files(const TargetsMetadata& targets, std::string_view model,
                                               std::string_view source) {
  std::vector<ReleaseFile> files;
  for (const auto& [path, target] : targets.targets) {
    auto found = target.custom.find("model");
    if (found == target.custom.end() || !found->is_string() || found->get<std::string>() != model) continue;
    auto file = parse_release_file(path, target, source);
    if (!file) return file.error();
    files.push_back(std::move(file).value());
  }
  std::stable_sort(files.begin(), files.end(),
                   [](const ReleaseFile& a, const ReleaseFile& b) { return a.version > b.version; });
  return files;
}

std::string full_file_path(std::string_view model, std::uint64_t version) {
  return std::string(model) + "/v" + std::to_string(version) + ".weights";
}

std::string delta_file_path(std::string_view model, std::uint64_t version, std::uint64_t base_version) {
  return std::string(model) + "/v" + std::to_string(version) + ".from-v" + std::to_string(base_version) + ".delta";
}

}  // namespace shoal::updater
