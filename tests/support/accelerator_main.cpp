// main of accelerator_tests: on a machine with no CUDA or MPS device, every
// case is reported skipped (CTest's SKIP_RETURN_CODE), never passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <string_view>

#include "shoal/inference/device.h"

namespace {
constexpr int kSkipped = 77;
}

int main(int argc, char** argv) {
  // Listing the cases (CTest's discovery) needs no device.
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string_view(argv[i]).starts_with("--list");
  if (!listing) {
    const auto chosen = shoal::inference::resolve_device("auto");
    if (!chosen || chosen->kind == shoal::inference::DeviceKind::cpu) {
      std::printf("skipped: no CUDA or MPS device on this machine (auto resolves to the CPU)\n");
      return kSkipped;
    }
  }
  return Catch::Session().run(argc, argv);
}
