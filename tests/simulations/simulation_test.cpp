// A small fleet end to end in one process: real agents, the real aggregator,
// CurveZMQ over loopback, Fashion-MNIST.
#include "shoal/simulations/simulation.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "shoal/aggregator/checkpoint.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;

TEST_CASE("a simulated fleet trains the global model round by round and checkpoints it") {
  shoal::testing::TempDir dir;
  simulations::SimulationConfig config;
  config.devices = 4;
  config.split = simulations::SplitKind::dirichlet;
  config.alpha = 1.0;
  config.model = "logreg";
  config.threads = 1;
  config.train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  config.train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
  config.test_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  config.test_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  config.train_samples = 4000;
  config.test_samples = 1000;
  config.work_dir = dir.path();
  config.round.final_version = 3;
  config.round.min_devices = 4;
  config.round.train_deadline = 120s;
  config.round.plan.learning_rate = 0.1;
  const bool secure = GENERATE(true, false);
  config.round.secure.enabled = secure;

  std::ostringstream out;
  auto result = simulations::run_simulation(config, out);
  REQUIRE(result);
  INFO(out.str());
  REQUIRE(result->rounds.size() == 3);
  for (const auto& round : result->rounds) {
    CHECK(round.record.applied);
    CHECK(round.record.reported == 4);
    CHECK(round.record.secure == secure);
    CHECK(round.record.samples == 4000);  // every device's share, once (a secure round's from its sum's total weight)
  }
  CHECK(result->initial_accuracy < 0.3);
  CHECK(result->final_accuracy > 0.6);
  auto checkpoint = aggregator::read_checkpoint(dir.path() / "aggregator");
  REQUIRE(checkpoint);
  REQUIRE(*checkpoint);
  CHECK((*checkpoint)->global.version() == 3);
  CHECK(out.str().find("    3       3") != std::string::npos);

  config.round.min_devices = 5;
  auto refused = simulations::run_simulation(config, out);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "simulation config: cohort.min_devices exceeds fleet.devices");
  config.round.min_devices = 2;
  config.dropout = 1.0;
  refused = simulations::run_simulation(config, out);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "simulation config: fleet.dropout must be in [0, 1)");
}

TEST_CASE("the shipped quick-start config loads, and a bad split is refused by key") {
  auto config = simulations::load_simulation_config(SHOAL_CONFIGS "/quickstart.toml");
  REQUIRE(config);
  CHECK(config->devices == 20);
  CHECK(config->alpha == 0.5);
  CHECK(config->round.final_version == 20);

  shoal::testing::TempDir dir;
  const auto path = dir.path() / "sim.toml";
  std::ofstream(path) << "[fleet]\nsplit = \"shards\"\n";
  auto refused = simulations::load_simulation_config(path);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == path.string() + ": key 'fleet.split': unknown split 'shards' (iid or dirichlet)");
}
