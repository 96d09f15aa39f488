// Fuzzes what a device reads from a release repository: each input is
// parsed as a TUF metadata file and then as each role's signed part.
#include <cstddef>
#include <cstdint>
#include <span>

#include "shoal/updater/tuf_metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shoal::updater;
  auto metadata = parse_metadata_file(std::span(data, size), "fuzz");
  if (!metadata) return 0;
  (void)parse_root(metadata->signed_part, "fuzz");
  (void)parse_targets(metadata->signed_part, "fuzz");
  (void)parse_snapshot(metadata->signed_part, "fuzz");
  (void)parse_timestamp(metadata->signed_part, "fuzz");
  return 0;
}
