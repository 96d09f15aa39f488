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
  CHECK(layout->parameter_count() == 36 + 4 + 1);
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
  for (const auto& changed : {renamed, reshaped, retyped, reordered}) {
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
