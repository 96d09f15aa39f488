// Fuzzes what a device reads from a release repository: each input is
// parsed as a TUF metadata file and then as each role's signed part; the
// delegations of a targets file are matched against paths and their role
// names encoded, as a target lookup does.
#include <cstddef>
#include <cstdint>
#include <span>

#include "shoal/updater/tuf_metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shoal::updater;
  auto metadata = parse_metadata_file(std::span(data, size), "fuzz");
  if (!metadata) return 0;
  (void)parse_root(metadata->signed_part, "fuzz");
  if (auto targets = parse_targets(metadata->signed_part, "fuzz"); targets && targets->delegations) {
    for (const auto& role : targets->delegations->roles) {
      (void)encode_role_name(role.name);
      for (const char* path : {"a", "models/cnn/v1.weights", "a/b/c", ""}) (void)delegated_role_matches(role, path);
      for (const auto& pattern : role.paths) (void)path_pattern_matches(pattern, pattern);
    }
  }
  (void)parse_snapshot(metadata->signed_part, "fuzz");
  (void)parse_timestamp(metadata->signed_part, "fuzz");
  return 0;
}
