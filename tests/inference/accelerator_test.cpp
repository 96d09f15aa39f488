// The CUDA and MPS paths: each test runs on the accelerator `auto` picks and
// compares with the CPU. On a machine with neither, each says so and passes.
#include <catch2/catch.hpp>

#include <random>

#include "shoal/inference/prediction_session.h"
#include "random_images.h"

using namespace shoal;
using namespace shoal::inference;

namespace {

// The accelerator to test on, or nullopt (with a warning) on a CPU-only machine.
std::optional<Device> accelerator() {
  const auto chosen = resolve_device("auto");
  REQUIRE(chosen);
  if (chosen->kind == DeviceKind::cpu) {
    WARN("no CUDA or MPS device on this machine: accelerator test skipped");
    return std::nullopt;
  }
  return *chosen;
}

std::vector<float> random_images(std::size_t count) { return testing::random_images(count, 7); }

}  // namespace

TEST_CASE("on an accelerator, zoo models predict what they predict on the CPU") {
  const auto device = accelerator();
  if (!device) return;
  const auto images = random_images(16);
  for (const char* name : {"logreg", "mlp", "cnn"}) {
    auto on_cpu = *PredictionSession::open(*Model::from_zoo(name, 5), *resolve_device("cpu"));
    auto on_device = PredictionSession::open(*Model::from_zoo(name, 5), *device);
    REQUIRE(on_device);
    CHECK(on_device->model().device() == *device);
    const auto expected = *on_cpu.predict(images, 16, OutputKind::raw);
    const auto actual = on_device->predict(images, 16, OutputKind::raw);
    REQUIRE(actual);
    for (std::size_t i = 0; i < expected.values.size(); ++i) {
      REQUIRE(actual->values[i] == Approx(expected.values[i]).margin(1e-3));
    }
  }
}

TEST_CASE("on an accelerator, weights go in and come out unchanged") {
  const auto device = accelerator();
  if (!device) return;
  auto model = *Model::from_zoo("cnn", 6);
  const auto weights = Model::from_zoo("cnn", 7)->get_weights(3);
  REQUIRE(model.to(*device));
  REQUIRE(model.set_weights(weights));
  const auto back = model.get_weights(3);
  CHECK(std::equal(back.values().begin(), back.values().end(), weights.values().begin()));
}
