// A federated round of a real BatchNorm model: two devices train the
// TorchScript fixture on different data, the round coordinator folds their
// updates, and the global model's running statistics become the
// sample-weighted mean of the devices'.
#include <catch2/catch.hpp>

#include <cstring>

#include "shoal/aggregator/round_coordinator.h"
#include "shoal/client/trainer.h"

using namespace shoal;
using namespace std::chrono_literals;

namespace {

client::Dataset device_data(std::size_t samples, std::uint64_t seed, float separation) {
  client::SyntheticSpec spec;
  spec.samples = samples;
  spec.seed = seed;
  spec.separation = separation;
  return client::make_synthetic(spec);
}

std::vector<std::uint8_t> bytes_of(const std::vector<float>& values) {
  std::vector<std::uint8_t> out(values.size() * sizeof(float));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

}  // namespace

TEST_CASE("a round with a BatchNorm model moves its running statistics to the devices' weighted mean") {
  auto model = *inference::Model::load_torchscript(SHOAL_TEST_FIXTURES "/bn_cnn.pt");
  const auto global = model.get_weights(5);
  const auto& layout = global.layout();
  aggregator::RoundConfig config;
  config.min_devices = 2;
  config.secure.enabled = false;
  aggregator::StrategyConfig momentum;  // server momentum must not touch the statistics
  momentum.kind = aggregator::StrategyKind::fedavgm;
  auto coordinator = *aggregator::RoundCoordinator::create(
      config, global, *aggregator::ServerOptimizer::create(momentum, layout.parameter_value_count()), 0);
  const aggregator::Clock::time_point t0{};
  for (const char* device : {"a", "b"}) coordinator.on_hello(device, protocol::Hello{"test", 5, true}, t0);
  coordinator.on_tick(t0);
  REQUIRE(coordinator.round_open());

  client::TrainingPlan plan;
  plan.learning_rate = 0.05f;
  plan.evaluate_before_after = false;
  const std::pair<const char*, client::Dataset> devices[] = {{"a", device_data(64, 1, 0.3f)},
                                                             {"b", device_data(192, 2, 1.0f)}};
  std::vector<weights::Weights> trained;
  for (const auto& [name, data] : devices) {
    REQUIRE(model.set_weights(global));
    auto result = client::train(model, data, plan);
    REQUIRE(result);
    trained.push_back(model.get_weights(5));
    const protocol::UpdateReport report{1, 5, result->samples, 0, 0, 0, 0};
    REQUIRE_FALSE(coordinator.on_update(name, report, bytes_of(result->update), t0 + 1s));
  }
  REQUIRE(coordinator.take_finished().at(0).applied);

  const auto& after = coordinator.global();
  for (const char* name : {"bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"}) {
    const auto t = *layout.find(name);
    const auto a = trained[0].tensor(t), b = trained[1].tensor(t), mean = after.tensor(t);
    for (std::size_t i = 0; i < mean.size(); ++i) {
      INFO(name << "[" << i << "]");
      CHECK(mean[i] == Approx((64.0 * a[i] + 192.0 * b[i]) / 256.0).epsilon(1e-5));
    }
  }
  // The counters: 2 and 6 batches of 32, weighted 64 and 192: 5.
  CHECK(after.tensor(*layout.find("bn1.num_batches_tracked"))[0] == 5.0f);
}
