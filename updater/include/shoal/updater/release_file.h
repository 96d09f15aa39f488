// What a release repository's target files are to shoal: a model version's
// full weights file, or a delta to it from an older version. TUF's targets
// metadata carries this in each target's "custom" object:
//
//   "cnn/v12.weights":          {"model": "cnn", "model_version": 12, "kind": "full",
//                                "codec": "shoal-weights/1", "values_blake2b": "<hex>"}
//   "cnn/v12.from-v11.delta":   {... "kind": "delta", "codec": "shoal-delta/1",
//                                "base_version": 11, "base_values_blake2b": "<hex>"}
//   a lossy release adds           "lossy_error_bound": "0.0001"
//
// values_blake2b is values_hash() of the version's weights: a device finds
// the delta whose base is the model it runs by comparing hashes, not names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/crypto/hash.h"
#include "shoal/updater/tuf_metadata.h"

namespace shoal::updater {

inline constexpr std::string_view kFullCodec = "shoal-weights/1";
inline constexpr std::string_view kDeltaCodec = "shoal-delta/1";

enum class ReleaseFileKind { full, delta };

struct ReleaseFile {
  std::string path;  // the target path
  std::uint64_t length = 0;
  std::string model;
  std::uint64_t version = 0;
  crypto::Blake2b256Digest values_hash{};
  ReleaseFileKind kind = ReleaseFileKind::full;
  std::uint64_t base_version = 0;  // deltas only
  crypto::Blake2b256Digest base_values_hash{};
  // A lossy release: how far any weight may be from the version the
  // operator gave ("0.0001"; text, as TUF metadata holds no floats). Empty: exact.
  std::string lossy_error_bound;

  std::string describe() const;  // "cnn version 12 (delta from 11, 1.2 MB)"
};

nlohmann::json release_custom(const ReleaseFile& file);
// Reads the custom object of one target; `source` names the metadata in errors.
Result<ReleaseFile> parse_release_file(const std::string& path, const TargetFile& target, std::string_view source);

// The release files of `model` listed in `targets`, newest version first.
// Targets without shoal custom metadata, or naming another model, are skipped.
Result<std::vector<ReleaseFile>> release_files(const TargetsMetadata& targets, std::string_view model,
                                               std::string_view source);

// The target paths shoal gives a version's files.
std::string full_file_path(std::string_view model, std::uint64_t version);
std::string delta_file_path(std::string_view model, std::uint64_t version, std::uint64_t base_version);

}  // namespace shoal::updater
