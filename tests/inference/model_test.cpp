#include "shoal/inference/model.h"

#include <catch2/catch.hpp>

#include <algorithm>

#include "shoal/inference/torch_model.h"

using namespace shoal;
using namespace shoal::inference;

TEST_CASE("zoo models have the documented parameter counts and named layers") {
  const std::pair<const char*, std::uint64_t> expected[] = {{"logreg", 7850}, {"mlp", 199210}, {"cnn", 1663370}, {"mlp-large", 11882506}};
  for (auto [name, count] : expected) {
    auto model = Model::from_zoo(name, 1);
    REQUIRE(model);
    CHECK(model->layout().value_count() == count);
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
  CHECK(model->layout().value_count() == 16 * 8 + 8 + 8 * 3 + 3);
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

TEST_CASE("a BatchNorm model's layout holds its buffers after its parameters, the counter as int64") {
  auto model = Model::load_torchscript(SHOAL_TEST_FIXTURES "/bn_cnn.pt");
  REQUIRE(model);
  const auto& layout = model->layout();
  CHECK(model->sample_shape() == std::vector<std::int64_t>{1, 28, 28});
  std::vector<std::string> buffers;
  for (const auto& tensor : layout.tensors()) {
    if (tensor.kind == weights::TensorKind::buffer) buffers.push_back(tensor.name);
  }
  CHECK(buffers == std::vector<std::string>{"bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                                            "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked"});
  const auto counter = *layout.find("bn1.num_batches_tracked");
  CHECK(layout.tensors()[counter].dtype == weights::DType::int64);
  CHECK(layout.value_count() - layout.parameter_value_count() == (16 + 16 + 1) + (32 + 32 + 1));

  // Every buffer value, the int64 counters to 2^24, survives a trip through the flat vector.
  auto weights = model->get_weights(3);
  auto values = weights.values();
  for (std::size_t i = layout.parameter_value_count(); i < values.size(); ++i) values[i] = 0.25f * static_cast<float>(i % 7);
  values[layout.offset(counter)] = 16777216.0f;
  values[layout.offset(*layout.find("bn2.num_batches_tracked"))] = 3.0f;
  REQUIRE(model->set_weights(weights));
  const auto again = model->get_weights(3);
  CHECK(std::equal(again.values().begin(), again.values().end(), weights.values().begin()));
  for (auto& [name, tensor] : model->backend().named_buffers()) {
    if (name == "bn1.num_batches_tracked") CHECK(tensor.item<std::int64_t>() == 16777216);
  }
}

TEST_CASE("weights without the buffers are refused by a BatchNorm model, saying so") {
  auto model = Model::load_torchscript(SHOAL_TEST_FIXTURES "/bn_cnn.pt");
  REQUIRE(model);
  const auto parameters_only = weights::Weights(model->layout().parameter_layout(), 1);
  auto status = model->set_weights(parameters_only);
  REQUIRE_FALSE(status);
  CHECK(status.error().message.find("the buffers are missing") != std::string::npos);
}

TEST_CASE("Model::open takes a TorchScript path or a zoo name") {
  CHECK(Model::open(SHOAL_TEST_FIXTURES "/bn_cnn.pt", 0)->layout().has_buffers());
  CHECK(Model::open("logreg", 0)->layout().value_count() == 7850);
  CHECK(Model::open("no-such-model", 0).error().message.find("no zoo model") != std::string::npos);
}

TEST_CASE("a declared sample shape that is not one is refused by name") {
  CHECK(check_sample_shape({1, 28, 28}));
  CHECK(check_sample_shape({}));  // none declared
  for (const std::vector<std::int64_t>& bad : {std::vector<std::int64_t>{-1, 4}, std::vector<std::int64_t>{0},
                                               std::vector<std::int64_t>{1 << 20, 1 << 20}}) {
    const auto status = check_sample_shape(bad);
    REQUIRE_FALSE(status);
    CHECK(status.error().message.find("is not a sample's shape") != std::string::npos);
  }
}
