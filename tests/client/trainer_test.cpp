#include "shoal/client/trainer.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "shoal/inference/torch_model.h"
#include "shoal/weights/vector_ops.h"
#include "shoal/weights/weights_file.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::client;
using shoal::inference::Model;
using shoal::testing::TempDir;

namespace {

Dataset synthetic_images(std::size_t samples, std::uint64_t seed) {
  SyntheticSpec spec;
  spec.samples = samples;
  spec.classes = 10;
  spec.sample_shape = {1, 28, 28};
  spec.seed = seed;
  spec.separation = 0.3f;
  return make_synthetic(spec);
}

TrainingPlan quick_plan() {
  TrainingPlan plan;
  plan.epochs = 2;
  plan.batch_size = 32;
  plan.learning_rate = 0.05f;
  plan.seed = 9;
  return plan;
}

}  // namespace

TEST_CASE("local training lowers the loss and raises the accuracy on its data") {
  auto model = *Model::from_zoo("mlp", 1);
  const auto data = synthetic_images(512, 3);
  auto result = train(model, data, quick_plan());
  REQUIRE(result);
  CHECK(result->samples == 512);
  CHECK(result->after.loss < result->before.loss);
  CHECK(result->after.accuracy > result->before.accuracy + 0.3);
}

TEST_CASE("the update is local minus global, in layout order") {
  auto model = *Model::from_zoo("logreg", 2);
  const auto global = model.get_weights(0);
  auto result = train(model, synthetic_images(128, 4), quick_plan());
  REQUIRE(result);
  const auto local = model.get_weights(0);
  REQUIRE(result->update.size() == global.values().size());
  for (std::size_t i = 0; i < result->update.size(); ++i) {
    REQUIRE(result->update[i] == local.values()[i] - global.values()[i]);
  }
}

TEST_CASE("training is deterministic on CPU for a fixed seed") {
  const auto data = synthetic_images(256, 5);
  auto first_model = *Model::from_zoo("cnn", 3);
  auto second_model = *Model::from_zoo("cnn", 3);
  TrainingPlan plan = quick_plan();
  plan.epochs = 1;
  plan.momentum = 0.9f;
  auto first = train(first_model, data, plan);
  auto second = train(second_model, data, plan);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->update == second->update);
  plan.seed = 10;  // another shuffle order gives another update
  auto third_model = *Model::from_zoo("cnn", 3);
  CHECK(train(third_model, data, plan)->update != first->update);
}

TEST_CASE("skipping the before/after evaluation leaves the update unchanged and reports the last epoch's running figures") {
  const auto data = synthetic_images(128, 6);
  auto evaluated_model = *Model::from_zoo("mlp", 4);
  auto unevaluated_model = *Model::from_zoo("mlp", 4);
  TrainingPlan plan = quick_plan();
  auto evaluated = train(evaluated_model, data, plan);
  plan.evaluate_before_after = false;
  auto unevaluated = train(unevaluated_model, data, plan);
  REQUIRE(evaluated);
  REQUIRE(unevaluated);
  CHECK(unevaluated->update == evaluated->update);
  CHECK(unevaluated->samples == 128);
  CHECK(evaluated->before.samples == 128);
  CHECK(unevaluated->before.samples == 0);
  // The last epoch's batches, measured as they trained: below the untrained loss, a real accuracy.
  CHECK(unevaluated->after.samples == 128);
  CHECK(unevaluated->after.loss < evaluated->before.loss);
  CHECK(unevaluated->after.accuracy > 0);
  CHECK(unevaluated->after.accuracy <= 1);
}

TEST_CASE("a large FedProx mu keeps the weights near the global model") {
  const auto data = synthetic_images(256, 6);
  TrainingPlan plan = quick_plan();
  auto free_model = *Model::from_zoo("mlp", 4);
  auto free = train(free_model, data, plan);
  plan.proximal_mu = 10.0f;
  auto held_model = *Model::from_zoo("mlp", 4);
  auto held = train(held_model, data, plan);
  REQUIRE(free);
  REQUIRE(held);
  CHECK(weights::l2_norm(held->update) < 0.5 * weights::l2_norm(free->update));
}

TEST_CASE("bad plans and unfit data are refused before any training") {
  auto model = *Model::from_zoo("logreg", 1);
  const auto before = model.get_weights(0);
  const auto data = synthetic_images(16, 7);
  TrainingPlan plan = quick_plan();
  plan.learning_rate = -1.0f;
  CHECK(train(model, data, plan).error().message == "training plan: learning_rate must be positive");
  plan = quick_plan();
  plan.momentum = 1.0f;
  CHECK(train(model, data, plan).error().message.find("momentum") != std::string::npos);

  SyntheticSpec flat;
  flat.sample_shape = {784};
  auto shape = train(model, make_synthetic(flat), quick_plan());
  REQUIRE_FALSE(shape);
  CHECK(shape.error().message.find("[1, 28, 28], the dataset's samples are [784]") != std::string::npos);

  SyntheticSpec many;
  many.classes = 12;
  many.samples = 200;
  auto labels = train(model, make_synthetic(many), quick_plan());
  REQUIRE_FALSE(labels);
  CHECK(labels.error().message.find("only 10 outputs") != std::string::npos);
  auto unevaluated_plan = quick_plan();
  unevaluated_plan.evaluate_before_after = false;
  auto unevaluated = train(model, make_synthetic(many), unevaluated_plan);
  REQUIRE_FALSE(unevaluated);
  CHECK(unevaluated.error().message.find("a label is 11 but the model has only 10 outputs") != std::string::npos);
  const auto after = model.get_weights(0);
  CHECK(std::equal(before.values().begin(), before.values().end(), after.values().begin()));
}

TEST_CASE("the zoo cnn learns from a slice of Fashion-MNIST") {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz")) {
    WARN("dataset-fashion-mnist is not installed; scripts/install-deps installs it");
    return;
  }
  const auto all = *load_idx(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
  std::vector<std::size_t> first(1000);
  std::iota(first.begin(), first.end(), 0);
  const auto slice = all.subset(first);
  auto model = *Model::from_zoo("cnn", 1);
  TrainingPlan plan;
  plan.epochs = 2;
  plan.batch_size = 32;
  plan.learning_rate = 0.1f;
  auto result = train(model, slice, plan);
  REQUIRE(result);
  CHECK(result->after.loss < result->before.loss);
  CHECK(result->after.accuracy > 0.3);  // chance is 0.1; about 0.55 here after two epochs
}

TEST_CASE("a TorchScript model trains through the same trainer") {
  auto model = Model::load_torchscript(SHOAL_TEST_FIXTURES "/tiny.pt");
  REQUIRE(model);
  SyntheticSpec spec;
  spec.samples = 300;
  spec.classes = 3;
  spec.sample_shape = {1, 4, 4};
  spec.separation = 1.0f;
  TrainingPlan plan = quick_plan();
  plan.epochs = 5;
  auto result = train(*model, make_synthetic(spec), plan);
  REQUIRE(result);
  CHECK(result->update.size() == model->layout().value_count());
  CHECK(result->after.loss < result->before.loss);
}

TEST_CASE("a BatchNorm model trained, written and reloaded predicts as it did when training ended") {
  auto model = Model::load_torchscript(SHOAL_TEST_FIXTURES "/bn_cnn.pt");
  REQUIRE(model);
  const auto initial = model->get_weights(0);
  const auto data = synthetic_images(256, 5);
  auto plan = quick_plan();
  plan.evaluate_before_after = false;
  REQUIRE(train(*model, data, plan));

  // Training moved the running statistics and counted its batches: 2 epochs of 8.
  const auto trained = model->get_weights(1);
  const auto& layout = model->layout();
  const auto mean = *layout.find("bn1.running_mean");
  CHECK_FALSE(std::ranges::equal(trained.tensor(mean), initial.tensor(mean)));
  CHECK(trained.tensor(*layout.find("bn2.num_batches_tracked"))[0] == 16.0f);

  TempDir dir;
  REQUIRE(weights::write_weights_file(dir / "v1.weights", trained));
  auto reloaded = Model::load_torchscript(SHOAL_TEST_FIXTURES "/bn_cnn.pt");
  REQUIRE(reloaded);
  REQUIRE(reloaded->set_weights(*weights::read_weights_file(dir / "v1.weights")));

  torch::NoGradGuard no_grad;
  const auto probe = torch::rand({16, 1, 28, 28}, torch::TensorOptions().dtype(torch::kFloat32));
  model->backend().train(false);
  reloaded->backend().train(false);
  const auto expected = model->backend().forward(probe);
  const auto actual = reloaded->backend().forward(probe);
  CHECK(torch::allclose(actual, expected, /*rtol=*/0, /*atol=*/1e-5));
  // And the reloaded model's own evaluation agrees with the trained one's.
  CHECK(evaluate(*reloaded, data)->accuracy == evaluate(*model, data)->accuracy);
}
