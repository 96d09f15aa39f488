// Where inference and training run: "cpu", "cuda[:N]", "mps" or "auto"
// (CUDA if available, else MPS, else CPU). Asking for a device this machine
// or this build does not have is an error listing what it does have.
// Torch-free, so configuration and command-line code can use it cheaply.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::inference {

enum class DeviceKind { cpu, cuda, mps };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;  // which GPU, for cuda

  std::string name() const;  // "cpu", "cuda:0", "mps"
  friend bool operator==(const Device&, const Device&) = default;
};

// Resolves a request ("cpu", "cuda", "cuda:1", "mps", "auto") against what is available.
Result<Device> resolve_device(std::string_view request);

// The devices this machine and build can run on, e.g. {"cpu", "cuda:0"}.
std::vector<std::string> available_devices();

// Threads libtorch uses for CPU work; 0 means one per core. (Debian's
// libtorch starts with a single thread, which halves training speed on a
// two-core laptop.)
Status set_cpu_threads(int threads);
int cpu_threads();

}  // namespace shoal::inference
