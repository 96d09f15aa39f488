#include "shoal/inference/model.h"

#include <catch2/catch.hpp>

#include "shoal/inference/torch_model.h"

using namespace shoal;
using namespace shoal::inference;

TEST_CASE("zoo models have the documented parameter counts and named layers") {
  const std::pair<const char*, std::uint64_t> expected[] = {{"logreg", 7850}, {"mlp", 199210}, {"cnn", 1663370}, {"mlp-large", 11882506}};
  for (auto [name, count] : expected) {
    auto model = Model::from_zoo(name, 1);
    REQUIRE(model);
    CHECK(model->layout().parameter_count() == count);
  }
  auto cnn = Model::from_zoo("cnn", 1);
  CHECK(cnn->layout().tensors().front().name == "conv1.weight");
  CHECK(cnn->layout().tensors().front().shape == std::vector<std::int64_t>{32, 1, 5, 5});
}

TEST_CASE("an unknown zoo model is refused with the zoo's names") {
  auto model = Model::from_zoo("resnet", 1);
  REQUIRE_FALSE(model);
  CHECK(model.error().message.find("logreg, mlp, cnn, mlp-large") != std::string::npos);
}

TEST_CASE("the same seed gives the same initial weights, another seed different ones") {
  const auto a = Model::from_zoo("mlp", 7)->get_weights(0);
  const auto b = Model::from_zoo("mlp", 7)->get_weights(0);
  const auto c = Model::from_zoo("mlp", 8)->get_weights(0);
  CHECK(std::equal(a.values().begin(), a.values().end(), b.values().begin()));
  CHECK_FALSE(std::equal(a.values().begin(), a.values().end(), c.values().begin()));
}

TEST_CASE("weights taken from one model and set into another make them compute the same function") {
  auto source = *Model::from_zoo("cnn", 1);
  auto target = *Model::from_zoo("cnn", 2);
  const auto weights = source.get_weights(5);
  REQUIRE(target.set_weights(weights));
  const auto copied = target.get_weights(5);
  CHECK(std::equal(weights.values().begin(), weights.values().end(), copied.values().begin()));
  torch::manual_seed(3);
  const auto input = torch::randn({4, 1, 28, 28});
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(source.backend().forward(input), target.backend().forward(input)));
}

TEST_CASE("weights of another layout are refused with both layout hashes") {
  auto cnn = *Model::from_zoo("cnn", 1);
  const auto mlp_weights = Model::from_zoo("mlp", 1)->get_weights(0);
  const auto before = cnn.get_weights(0);
  auto status = cnn.set_weights(mlp_weights);
  REQUIRE_FALSE(status);
  CHECK(status.error().message.find(cnn.layout().short_hash()) != std::string::npos);
  CHECK(status.error().message.find(mlp_weights.layout().short_hash()) != std::string::npos);
  const auto after = cnn.get_weights(0);
  CHECK(std::equal(before.values().begin(), before.values().end(), after.values().begin()));
}

TEST_CASE("a missing or broken TorchScript file is a clear error") {
  auto missing = Model::load_torchscript("/nonexistent/model.pt");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::not_found);
  auto broken = Model::load_torchscript(__FILE__);  // a C++ file is not a TorchScript archive
  REQUIRE_FALSE(broken);
  CHECK(broken.error().message.find("cannot be loaded") != std::string::npos);
}

TEST_CASE("a TorchScript model loads with its parameters as the layout, and takes weights") {
  auto model = Model::load_torchscript(SHOAL_TEST_FIXTURES "/tiny.pt");
  REQUIRE(model);
  const auto& tensors = model->layout().tensors();
  REQUIRE(tensors.size() == 4);
  CHECK(tensors[0].name == "hidden.weight");
  CHECK(tensors[0].shape == std::vector<std::int64_t>{8, 16});
  CHECK(model->layout().parameter_count() == 16 * 8 + 8 + 8 * 3 + 3);
  CHECK(model->sample_shape().empty());

  auto weights = model->get_weights(1);
  for (float& v : weights.values()) v = 0.5f;
  REQUIRE(model->set_weights(weights));
  const auto input = torch::ones({2, 1, 4, 4});
  torch::NoGradGuard no_grad;
  const auto output = model->backend().forward(input);
  // Every weight and bias 0.5, every input 1: hidden = relu(16 * 0.5 + 0.5) = 8.5,
  // out = 8 * 0.5 * 8.5 + 0.5 = 34.5.
  CHECK(output.sizes() == torch::IntArrayRef({2, 3}));
  CHECK(torch::allclose(output, torch::full({2, 3}, 34.5f)));
}
