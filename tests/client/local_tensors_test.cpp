#include "shoal/client/local_tensors.h"

#include <catch2/catch.hpp>

#include "temp_dir.h"

using namespace shoal;
using namespace shoal::client;
using weights::DType, weights::TensorKind;

namespace {

weights::Weights batchnorm_model(float fill) {
  auto layout = *weights::Layout::create({{"conv.weight", {3}},
                                          {"bn.weight", {2}},
                                          {"bn.running_var", {2}, DType::float32, TensorKind::buffer},
                                          {"bn.num_batches_tracked", {}, DType::int64, TensorKind::buffer}});
  return *weights::Weights::from_values(layout, 1, std::vector<float>(layout.value_count(), fill));
}

std::vector<float> values_of(const weights::Weights& weights) { return {weights.values().begin(), weights.values().end()}; }

}  // namespace

TEST_CASE("a device keeps what training made of its local tensors and trains with them next time") {
  const std::vector<std::uint64_t> local_tensors{1, 2};
  auto trained = batchnorm_model(0.0f);
  for (std::size_t i = 0; i < trained.values().size(); ++i) trained.values()[i] = static_cast<float>(i);
  const auto kept = take_local(local_tensors, trained);
  CHECK(kept.tensors == local_tensors);
  CHECK(kept.values == std::vector<float>{3, 4, 5, 6});

  auto global = batchnorm_model(9.0f);
  overlay_local(kept, local_tensors, global);
  CHECK(values_of(global) == std::vector<float>{9, 9, 9, 3, 4, 5, 6, 9});
  // Kept values of another set of tensors (the federation changed its mind) are not applied.
  auto other = batchnorm_model(9.0f);
  overlay_local(kept, std::vector<std::uint64_t>{2}, other);
  CHECK(values_of(other) == std::vector<float>(8, 9.0f));

  std::vector<float> update(8, 1.0f);
  zero_local(global.layout(), local_tensors, update);
  CHECK(update == std::vector<float>{1, 1, 1, 0, 0, 0, 0, 1});
}

TEST_CASE("local values survive a restart in their own file, and a file for another model is refused") {
  shoal::testing::TempDir dir;
  const auto model = batchnorm_model(0.0f);
  const LocalValues kept{{1, 3}, {0.5f, -0.5f, 42.0f}};
  REQUIRE(write_local_values(dir / "local.weights", model.layout(), kept));
  auto read = read_local_values(dir / "local.weights", model.layout());
  REQUIRE(read);
  CHECK(read->tensors == kept.tensors);
  CHECK(read->values == kept.values);

  CHECK(read_local_values(dir / "absent.weights", model.layout())->empty());
  const auto other = *weights::Layout::create({{"conv.weight", {3}}, {"bn.weight", {5}}});
  auto refused = read_local_values(dir / "local.weights", other);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("local tensor 'bn.weight' is not a tensor of this model's layout") !=
        std::string::npos);
}
