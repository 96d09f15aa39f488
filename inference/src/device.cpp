#include "shoal/inference/device.h"

#include <torch/torch.h>

#include <dlfcn.h>

#include <algorithm>
#include <thread>

#include "shoal/inference/torch_model.h"

namespace shoal::inference {
namespace {

bool mps_available() {
#if defined(__APPLE__)
  return torch::mps::is_available();
#else
  return false;  // MPS exists only on Apple silicon builds of libtorch
#endif
}

std::string list_available() {
  std::string text;
  for (const auto& name : available_devices()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

Error unavailable(std::string_view request, const std::string& why) {
  return make_error(ErrorCode::not_found,
                    "device '" + std::string(request) + "' " + why + "; available: " + list_available());
}

}  // namespace

std::string Device::name() const {
  switch (kind) {
    case DeviceKind::cpu: return "cpu";
    case DeviceKind::cuda: return "cuda:" + std::to_string(index);
    case DeviceKind::mps: return "mps";
  }
  return "unknown";
}

std::vector<std::string> available_devices() {
  std::vector<std::string> names = {"cpu"};
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  for (int i = 0; i < gpus; ++i) names.push_back("cuda:" + std::to_string(i));
  if (mps_available()) names.push_back("mps");
  return names;
}

Result<Device> resolve_device(std::string_view request) {
  if (request == "cpu") return Device{DeviceKind::cpu, 0};
  if (request == "auto") {
    if (torch::cuda::is_available()) return Device{DeviceKind::cuda, 0};
    if (mps_available()) return Device{DeviceKind::mps, 0};
    return Device{DeviceKind::cpu, 0};
  }
  if (request == "mps") {
    if (!mps_available()) return unavailable(request, "is not available on this machine or build");
    return Device{DeviceKind::mps, 0};
  }
  if (request == "cuda" || request.starts_with("cuda:")) {
    int index = 0;
    if (request.size() > 5) {
      const std::string digits(request.substr(5));
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 3) {
        return make_error(ErrorCode::invalid_argument, "device '" + std::string(request) + "': expected cuda:<index>");
      }
      index = std::stoi(digits);
    }
    if (!torch::cuda::is_available()) return unavailable(request, "is not available (no CUDA device, or a CPU-only libtorch)");
    if (index >= static_cast<int>(torch::cuda::device_count())) return unavailable(request, "does not exist");
    return Device{DeviceKind::cuda, index};
  }
  return make_error(ErrorCode::invalid_argument,
                    "device '" + std::string(request) + "' is not one of cpu, cuda, cuda:<index>, mps, auto");
}

Status set_cpu_threads(int threads) {
  if (threads < 0) {
    return make_error(ErrorCode::invalid_argument, "thread count must be at least 0, got " + std::to_string(threads));
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  // libtorch already splits work across its own threads; when the BLAS it
  // loaded is OpenBLAS, OpenBLAS's threads would compete with them for the
  // same cores (measured: 0.83k vs 1.2k cnn training samples/s on 2 cores).
  using SetThreads = void (*)(int);
  if (auto openblas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) openblas(1);
  return ok_status();
}

int cpu_threads() { return torch::get_num_threads(); }

torch::Device to_torch(const Device& device) {
  switch (device.kind) {
    case DeviceKind::cpu: return torch::Device(torch::kCPU);
    case DeviceKind::cuda: return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device.index));
    case DeviceKind::mps: return torch::Device(torch::kMPS);
  }
  return torch::Device(torch::kCPU);
}

}  // namespace shoal::inference
