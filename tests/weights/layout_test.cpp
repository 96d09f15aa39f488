#include "shoal/weights/layout.h"

#include <catch2/catch.hpp>

using namespace shoal;
using namespace shoal::weights;

namespace {

std::vector<TensorSpec> small_model() {
  return {{"conv.weight", {4, 1, 3, 3}, DType::float32}, {"conv.bias", {4}, DType::float32}, {"scale", {}, DType::float32}};
}

}  // namespace

TEST_CASE("a layout counts parameters and places each tensor after the previous one") {
  auto layout = Layout::create(small_model());
  REQUIRE(layout);
  CHECK(layout->value_count() == 36 + 4 + 1);
  CHECK(layout->offset(0) == 0);
  CHECK(layout->offset(1) == 36);
  CHECK(layout->offset(2) == 40);
  CHECK(layout->find("conv.bias") == 1u);
  CHECK_FALSE(layout->find("fc.weight"));
}

TEST_CASE("equal layouts hash equal and any difference changes the hash") {
  const auto base = *Layout::create(small_model());
  CHECK(Layout::create(small_model())->hash() == base.hash());
  auto renamed = small_model();
  renamed[1].name = "conv.b";
  auto reshaped = small_model();
  reshaped[0].shape = {4, 1, 9};  // same element count, different shape
  auto retyped = small_model();
  retyped[2].dtype = DType::bfloat16;
  auto reordered = small_model();
  std::swap(reordered[0], reordered[1]);
  auto rekinded = small_model();
  rekinded[2].kind = TensorKind::buffer;
  for (const auto& changed : {renamed, reshaped, retyped, reordered, rekinded}) {
    CHECK(Layout::create(changed)->hash() != base.hash());
  }
}

TEST_CASE("invalid layouts are refused with the tensor named") {
  auto repeated = small_model();
  repeated.push_back({"conv.bias", {1}, DType::float32});
  auto error = Layout::create(repeated);
  REQUIRE_FALSE(error);
  CHECK(error.error().message == "layout tensor 3 'conv.bias': name repeated");
  CHECK(Layout::create({{"", {1}, DType::float32}}).error().message.find("empty name") != std::string::npos);
  CHECK(Layout::create({{"w", {2, -1}, DType::float32}}).error().message.find("negative dimension") != std::string::npos);
  CHECK(Layout::create({{"w", {1 << 20, 1 << 20}, DType::float32}}).error().message.find("too many") != std::string::npos);
}

TEST_CASE("a layout mismatch names both layout hashes") {
  const auto a = *Layout::create(small_model());
  const auto b = *Layout::create({{"fc.weight", {10, 5}, DType::float32}});
  const auto error = layout_mismatch("update from device 7", a, b);
  CHECK(error.message.find(a.short_hash()) != std::string::npos);
  CHECK(error.message.find(b.short_hash()) != std::string::npos);
  CHECK(error.message.find("update from device 7") != std::string::npos);
}

namespace {

std::vector<TensorSpec> batchnorm_model() {
  return {{"conv.weight", {4, 1, 3, 3}, DType::float32},
          {"bn.weight", {4}, DType::float32},
          {"bn.running_mean", {4}, DType::float32, TensorKind::buffer},
          {"bn.num_batches_tracked", {}, DType::int64, TensorKind::buffer}};
}

}  // namespace

TEST_CASE("buffers follow the parameters, and the parameters are the flat vector's prefix") {
  const auto layout = *Layout::create(batchnorm_model());
  CHECK(layout.value_count() == 36 + 4 + 4 + 1);
  CHECK(layout.parameter_value_count() == 40);
  CHECK(layout.has_buffers());
  CHECK(layout.offset(3) == 44);
  const auto parameters = layout.parameter_layout();
  CHECK(parameters.value_count() == 40);
  CHECK_FALSE(parameters.has_buffers());
  CHECK(parameters.tensors().size() == 2);
  CHECK_FALSE(Layout::create(small_model())->has_buffers());
}

TEST_CASE("a parameter after a buffer, or an integer parameter, is refused") {
  auto late = batchnorm_model();
  late.push_back({"fc.weight", {2}, DType::float32});
  CHECK(Layout::create(late).error().message == "layout tensor 4 'fc.weight': a parameter after a buffer (parameters come first)");
  auto integer = small_model();
  integer[1].dtype = DType::int64;
  CHECK(Layout::create(integer).error().message.find("an int64 parameter") != std::string::npos);
}

TEST_CASE("a mismatch where only the buffers are missing says so") {
  const auto full = *Layout::create(batchnorm_model());
  const auto message = layout_mismatch("weights for model 'bn'", full, full.parameter_layout()).message;
  CHECK(message.find("the buffers are missing") != std::string::npos);
  CHECK(message.find("2 parameters and 2 buffers") != std::string::npos);
  CHECK(layout_mismatch("x", full, *Layout::create(small_model())).message.find("buffers are missing") ==
        std::string::npos);
}
