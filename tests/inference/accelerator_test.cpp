// The CUDA and MPS paths: each test runs on the accelerator `auto` picks and
// compares with the CPU. On a machine with neither, accelerator_main.cpp
// reports every case skipped (exit code 77), never passed.
#include <catch2/catch.hpp>

#include <random>

#include "shoal/client/dataset.h"
#include "shoal/client/trainer.h"
#include "shoal/inference/prediction_session.h"
#include "shoal/weights/vector_ops.h"
#include "random_images.h"

using namespace shoal;
using namespace shoal::inference;

namespace {

// The accelerator `auto` picks; main has made sure there is one.
Device accelerator() {
  const auto chosen = resolve_device("auto");
  REQUIRE(chosen);
  REQUIRE(chosen->kind != DeviceKind::cpu);
  return *chosen;
}

std::vector<float> random_images(std::size_t count) { return testing::random_images(count, 7); }

}  // namespace

TEST_CASE("on an accelerator, zoo models predict what they predict on the CPU") {
  const auto device = accelerator();
  const auto images = random_images(16);
  for (const char* name : {"logreg", "mlp", "cnn"}) {
    auto on_cpu = *PredictionSession::open(*Model::from_zoo(name, 5), *resolve_device("cpu"));
    auto on_device = PredictionSession::open(*Model::from_zoo(name, 5), device);
    REQUIRE(on_device);
    CHECK(on_device->model().device() == device);
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
  auto model = *Model::from_zoo("cnn", 6);
  const auto weights = Model::from_zoo("cnn", 7)->get_weights(3);
  REQUIRE(model.to(device));
  REQUIRE(model.set_weights(weights));
  const auto back = model.get_weights(3);
  CHECK(std::equal(back.values().begin(), back.values().end(), weights.values().begin()));
}

TEST_CASE("on an accelerator, training lowers the loss and the update comes back to the CPU") {
  const auto device = accelerator();
  client::SyntheticSpec spec;
  spec.samples = 512;
  spec.classes = 10;
  spec.sample_shape = {1, 28, 28};
  spec.seed = 8;
  spec.separation = 0.3f;
  client::TrainingPlan plan;
  plan.epochs = 2;
  plan.batch_size = 32;
  plan.learning_rate = 0.05f;
  plan.seed = 9;
  auto model = *Model::from_zoo("cnn", 1);
  REQUIRE(model.to(device));
  auto result = client::train(model, client::make_synthetic(spec), plan);
  REQUIRE(result);
  CHECK(result->after.loss < result->before.loss);
  CHECK(result->update.size() == 1'663'370);
  CHECK(weights::l2_norm(result->update) > 0);
}
