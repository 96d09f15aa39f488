// Small fleets end to end in one process, on Fashion-MNIST: the fleet
// engine in virtual time and real agents over loopback CurveZMQ; the same
// seed repeating byte for byte whatever the number of workers; settings
// that cannot work refused by key.
#include "shoal/simulations/simulation.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "shoal/aggregator/checkpoint.h"
#include "shoal/base/durable_file.h"
#include "shoal/inference/model.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

simulations::SimulationConfig small_fleet(const fs::path& work_dir) {
  simulations::SimulationConfig config;
  config.devices = 4;
  config.split.split = simulations::SplitKind::dirichlet;
  config.split.alpha = 1.0;
  config.model = "logreg";
  config.threads = 1;
  config.train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  config.train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
  config.test_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  config.test_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  config.train_samples = 4000;
  config.test_samples = 1000;
  config.work_dir = work_dir;
  config.round.final_version = 3;
  config.round.min_devices = 4;
  config.round.train_deadline = 120s;
  config.round.plan.learning_rate = 0.1;
  return config;
}

std::string text_of(const fs::path& path) {
  auto text = base::read_file(path, 1 << 24);
  REQUIRE(text);
  return *text;
}

std::string refusal(const simulations::SimulationConfig& config) {
  std::ostringstream out;
  auto result = simulations::run_simulation(config, out);
  REQUIRE_FALSE(result);
  return result.error().message;
}

}  // namespace

TEST_CASE("a fleet on the engine trains the global model round by round, checkpoints it and reports it") {
  shoal::testing::TempDir dir;
  auto config = small_fleet(dir.path());
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
    CHECK(round.costs.bytes_in > 4 * 7850 * 4);  // at least every update's values crossed the wire
    CHECK(round.virtual_seconds > 0);
  }
  CHECK(result->rounds[2].virtual_seconds > result->rounds[0].virtual_seconds);
  CHECK(result->initial_accuracy < 0.3);
  CHECK(result->final_accuracy > 0.6);
  auto checkpoint = aggregator::read_checkpoint(dir.path() / "aggregator");
  REQUIRE(checkpoint);
  REQUIRE(*checkpoint);
  CHECK((*checkpoint)->global.version() == 3);
  CHECK(out.str().find("    3       3       4/4") != std::string::npos);

  // Each round's metrics carry its virtual timeline; the wall clock is kept apart.
  std::istringstream metrics(text_of(dir.path() / "aggregator" / "metrics.jsonl"));
  std::size_t lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    const auto record = nlohmann::json::parse(line);
    CHECK_FALSE(record.contains("time"));
    CHECK(record["timeline"]["start"].get<double>() >= 0);
    CHECK(record["timeline"]["phases"].contains(secure ? "unmasking" : "training"));
  }
  CHECK(lines == 3);
  CHECK(text_of(dir.path() / "wall_clock.jsonl").find("\"checkpoint\"") != std::string::npos);
  CHECK(text_of(dir.path() / "report.svg").rfind("<svg", 0) == 0);
  const auto tests = text_of(dir.path() / "test_set.jsonl");
  CHECK(std::count(tests.begin(), tests.end(), '\n') == 3);
}

TEST_CASE("a BatchNorm model's running statistics and counters are federated, in plain and secure rounds") {
  shoal::testing::TempDir dir;
  auto config = small_fleet(dir.path());
  config.split.split = simulations::SplitKind::iid;  // 1,000 samples each: 32 batches of 32 an epoch
  config.model = SHOAL_TEST_FIXTURES "/bn_cnn.pt";
  config.round.final_version = 2;
  config.round.plan.learning_rate = 0.05;
  config.round.secure.enabled = GENERATE(true, false);
  std::ostringstream out;
  auto result = simulations::run_simulation(config, out);
  INFO(out.str());
  REQUIRE(result);
  auto checkpoint = aggregator::read_checkpoint(dir.path() / "aggregator");
  REQUIRE(checkpoint);
  REQUIRE(*checkpoint);
  const auto& global = (*checkpoint)->global;
  const auto& layout = global.layout();
  // Every device counted 32 batches a round, so the mean of the counts is 64 after two rounds;
  // a secure round's clamp to its range would have left at most 2.
  CHECK(global.tensor(*layout.find("bn1.num_batches_tracked"))[0] == 64.0f);
  CHECK(global.tensor(*layout.find("bn2.num_batches_tracked"))[0] == 64.0f);
  // The running variance left its initial 1s for the data's statistics.
  const auto variance = global.tensor(*layout.find("bn1.running_var"));
  CHECK(std::none_of(variance.begin(), variance.end(), [](float v) { return v == 1.0f; }));
  // The global model evaluates with those statistics, so it predicts well.
  CHECK(result->final_accuracy > 0.6);
}

TEST_CASE("with FedBN the statistics stay on the devices: the global model keeps its own, the devices train theirs") {
  shoal::testing::TempDir dir;
  auto config = small_fleet(dir.path());
  config.model = SHOAL_TEST_FIXTURES "/bn_cnn.pt";
  config.round.final_version = 2;
  config.round.plan.learning_rate = 0.05;
  config.round.local_tensors = {"bn*.running_*", "bn*.num_batches_tracked"};
  config.round.evaluate_every = 2;  // the devices evaluate with their own statistics
  // On the engine, and with real agents over CurveZMQ.
  config.transport = GENERATE(simulations::Transport::engine, simulations::Transport::tcp);
  std::ostringstream out;
  auto result = simulations::run_simulation(config, out);
  INFO(out.str());
  REQUIRE(result);
  CHECK(text_of(dir.path() / "aggregator.log").find("keeps 6 tensors local to the devices (FedBN): bn1.running_mean") !=
        std::string::npos);
  const auto global = (*aggregator::read_checkpoint(dir.path() / "aggregator"))->global;
  const auto initial = (*inference::Model::load_torchscript(config.model)).get_weights(0);
  const auto& layout = global.layout();
  for (const char* name : {"bn1.running_mean", "bn1.running_var", "bn2.num_batches_tracked"}) {
    const auto t = *layout.find(name);
    CHECK(std::ranges::equal(global.tensor(t), initial.tensor(t)));  // never left the devices
  }
  const auto weight = *layout.find("conv1.weight");
  CHECK_FALSE(std::ranges::equal(global.tensor(weight), initial.tensor(weight)));  // the parameters are federated
  // Evaluated on the devices with their own statistics, the model has learnt.
  std::istringstream metrics(text_of(dir.path() / "aggregator" / "metrics.jsonl"));
  std::optional<double> evaluated;
  for (std::string line; std::getline(metrics, line);) {
    const auto record = nlohmann::json::parse(line);
    if (record.value("event", "") == "evaluation") evaluated = record.at("accuracy").get<double>();
  }
  REQUIRE(evaluated);
  CHECK(*evaluated > 0.6);
}

TEST_CASE("the same seed gives a byte-identical metrics log for one worker and two, dropouts and secure rounds included") {
  shoal::testing::TempDir one, two;
  auto config = small_fleet(one.path());
  config.devices = 8;
  config.round.min_devices = 3;
  config.round.min_available = 8;
  config.round.fraction = 0.75;
  config.round.secure.phase_deadline = 2s;
  config.round.train_deadline = 10s;
  config.round.final_version = 4;
  config.dropout = 0.3;
  config.workers = 1;
  std::ostringstream out;
  auto first = simulations::run_simulation(config, out);
  REQUIRE(first);
  config.work_dir = two.path();
  config.workers = 2;
  auto second = simulations::run_simulation(config, out);
  REQUIRE(second);
  INFO(out.str());
  const auto metrics = text_of(one.path() / "aggregator" / "metrics.jsonl");
  CHECK(metrics == text_of(two.path() / "aggregator" / "metrics.jsonl"));
  CHECK(text_of(one.path() / "test_set.jsonl") == text_of(two.path() / "test_set.jsonl"));
  // The runs were not trivially alike: devices dropped out, and rounds moved the model.
  std::size_t dropped = 0;
  for (const auto& round : first->rounds) dropped += round.record.dropped;
  CHECK(dropped > 0);
  CHECK(first->final_accuracy > first->initial_accuracy + 0.3);
}

TEST_CASE("a small fleet of real agents over loopback CurveZMQ trains as on the engine") {
  shoal::testing::TempDir dir;
  auto config = small_fleet(dir.path());
  config.transport = simulations::Transport::tcp;
  config.round.final_version = 2;
  std::ostringstream out;
  auto result = simulations::run_simulation(config, out);
  REQUIRE(result);
  INFO(out.str());
  REQUIRE(result->rounds.size() == 2);
  for (const auto& round : result->rounds) {
    CHECK(round.record.applied);
    CHECK(round.record.reported == 4);
    CHECK(round.record.samples == 4000);
  }
  CHECK(result->final_accuracy > 0.5);
  CHECK(fs::exists(dir.path() / "agents.log"));
}

TEST_CASE("fleets and settings that cannot work are refused before the run, by key") {
  shoal::testing::TempDir dir;
  auto config = small_fleet(dir.path());
  config.round.min_devices = 5;
  CHECK(refusal(config) == "simulation config: cohort.min_devices exceeds fleet.devices");
  config.round.min_devices = 2;
  config.dropout = 1.0;
  CHECK(refusal(config) == "simulation config: fleet.dropout must be in [0, 1)");
  config.dropout = 0.1;
  config.fleet.dropout[1] = 0.2;
  CHECK(refusal(config) == "simulation config: fleet.dropout and the [dropout] section are both set; use one");
  config.dropout = 0;
  config.fleet.speed = 0;
  CHECK(refusal(config) == "simulation config: devices.speed must be positive (samples per second)");
  config.fleet = {};
  config.fleet.online_share = 1.5;
  CHECK(refusal(config) == "simulation config: devices.online_share must be in (0, 1]");
  config.fleet = {};
  config.split.split = simulations::SplitKind::iid;
  config.devices = 5000;  // 4000 samples, drawn without replacement
  CHECK(refusal(config).find("fleet.devices is 5000, but the 4000 training samples cannot give each device 1") !=
        std::string::npos);
  config.split.split = simulations::SplitKind::shards;
  config.devices = 1000;
  config.split.shards_per_device = 5;
  CHECK(refusal(config).find("fleet.devices x fleet.shards_per_device is 5000 shards") != std::string::npos);
  config.split.split = simulations::SplitKind::iid;
  config.devices = 1'000'000'000;  // a billion devices do not fit in memory
  config.split.samples_per_device = 60;
  CHECK(refusal(config).find("simulation config: fleet.devices = 1000000000 needs about") != std::string::npos);
  config.devices = 5000;
  config.transport = simulations::Transport::tcp;
  CHECK(refusal(config).find("fleet.transport = \"tcp\" runs a thread and sockets per device") != std::string::npos);
}

TEST_CASE("the shipped simulation configs load, and a bad split or transport is refused by key") {
  auto quickstart = simulations::load_simulation_config(SHOAL_CONFIGS "/quickstart.toml");
  REQUIRE(quickstart);
  CHECK(quickstart->devices == 20);
  CHECK(quickstart->split.alpha == 0.5);
  CHECK(quickstart->round.final_version == 20);
  CHECK(quickstart->transport == simulations::Transport::engine);
  auto ten_thousand = simulations::load_simulation_config(SHOAL_CONFIGS "/fleet-10k.toml");
  REQUIRE(ten_thousand);
  CHECK(ten_thousand->devices == 10'000);
  auto hundred_thousand = simulations::load_simulation_config(SHOAL_CONFIGS "/fleet-100k.toml");
  REQUIRE(hundred_thousand);
  CHECK(hundred_thousand->devices == 100'000);

  shoal::testing::TempDir dir;
  const auto path = dir.path() / "sim.toml";
  std::ofstream(path) << "[fleet]\nsplit = \"pathological\"\n";
  auto refused = simulations::load_simulation_config(path);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message ==
        path.string() + ": key 'fleet.split': unknown split 'pathological' (iid, dirichlet, shards or quantity)");
  std::ofstream(path) << "[fleet]\ntransport = \"udp\"\n";
  refused = simulations::load_simulation_config(path);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == path.string() + ": key 'fleet.transport': unknown transport 'udp' (engine or tcp)");
  std::ofstream(path) << "[devices]\nspeedy = 3\n";
  refused = simulations::load_simulation_config(path);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("devices.speedy") != std::string::npos);
}
