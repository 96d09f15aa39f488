#include "shoal/inference/device.h"

#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <thread>

using namespace shoal;
using namespace shoal::inference;

TEST_CASE("cpu is always available and auto picks a device that is") {
  CHECK(resolve_device("cpu")->kind == DeviceKind::cpu);
  const auto available = available_devices();
  REQUIRE_FALSE(available.empty());
  CHECK(available.front() == "cpu");
  auto chosen = resolve_device("auto");
  REQUIRE(chosen);
  CHECK(std::find(available.begin(), available.end(), chosen->name()) != available.end());
}

TEST_CASE("asking for an absent GPU is an error that lists the available devices") {
  const auto available = available_devices();
  const bool has_cuda = std::any_of(available.begin(), available.end(), [](const auto& d) { return d.starts_with("cuda"); });
  auto cuda = resolve_device("cuda:7");
  if (!has_cuda || available.size() < 9) {
    REQUIRE_FALSE(cuda);
    CHECK(cuda.error().message.find("available: cpu") != std::string::npos);
  }
  if (std::find(available.begin(), available.end(), "mps") == available.end()) {
    auto mps = resolve_device("mps");
    REQUIRE_FALSE(mps);
    CHECK(mps.error().message.find("available: cpu") != std::string::npos);
  }
}

TEST_CASE("a malformed device request names the accepted forms") {
  for (const char* request : {"gpu", "cuda:", "cuda:x", "CPU", ""}) {
    auto device = resolve_device(request);
    REQUIRE_FALSE(device);
    CHECK(device.error().message.find(std::string("'") + request + "'") != std::string::npos);
  }
}

TEST_CASE("a negative thread count is refused, zero means one per core") {
  const int before = torch::get_num_threads();
  CHECK_FALSE(set_cpu_threads(-1));
  CHECK(torch::get_num_threads() == before);
  REQUIRE(set_cpu_threads(0));
  CHECK(torch::get_num_threads() == static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  REQUIRE(set_cpu_threads(1));
  CHECK(torch::get_num_threads() == 1);
}
