// The fleet engine's virtual clock: deadlines, links and availability cost
// virtual seconds, and the protocol runs without training when asked.
#include "shoal/simulations/fleet_engine.h"

#include <catch2/catch.hpp>

#include <sstream>

#include "shoal/aggregator/checkpoint.h"
#include "shoal/simulations/simulation.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;

namespace {

simulations::SimulationConfig tiny_fleet(const std::filesystem::path& work_dir, std::size_t devices) {
  simulations::SimulationConfig config;
  config.devices = devices;
  config.split.split = simulations::SplitKind::iid;
  config.model = "logreg";
  config.train_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  config.train_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  config.test_images = config.train_images;
  config.test_labels = config.train_labels;
  config.train_samples = 100 * devices;
  config.test_samples = 500;
  config.work_dir = work_dir;
  config.round.final_version = 2;
  config.round.min_devices = 2;
  config.round.secure.enabled = false;
  config.workers = 1;
  return config;
}

simulations::SimulationResult run(const simulations::SimulationConfig& config) {
  std::ostringstream out;
  auto result = simulations::run_simulation(config, out);
  INFO(out.str());
  REQUIRE(result);
  return std::move(result).value();
}

}  // namespace

TEST_CASE("a device that vanishes while training costs its round the train deadline in virtual time") {
  shoal::testing::TempDir dir;
  auto config = tiny_fleet(dir.path(), 6);
  config.round.train_deadline = 600s;
  config.round.device_timeout = 3600s;
  config.fleet.dropout[0] = 0.4;
  config.fleet.rejoin_s = 1e6;  // gone for good
  config.round.final_version = 3;
  const auto result = run(config);
  bool waited = false;
  for (const auto& round : result.rounds) {
    if (round.record.reported == round.record.cohort) {
      CHECK(round.record.seconds < 60);  // everyone answered: no waiting for the deadline
    } else {
      waited = true;
      CHECK(round.record.seconds == Approx(600).margin(0.1));
      CHECK(round.record.dropped + round.record.stragglers == round.record.cohort - round.record.reported);
    }
  }
  CHECK(waited);
  CHECK(result.virtual_seconds >= 600);
}

TEST_CASE("a message takes its link's latency plus its size over the bandwidth") {
  shoal::testing::TempDir dir;
  auto config = tiny_fleet(dir.path(), 2);
  config.fleet.downlink_mbps = 1;  // the 31 kB logreg takes a quarter second down
  config.fleet.uplink_mbps = 1;    // and its update a quarter second up
  config.fleet.bandwidth_spread = 0;
  config.fleet.latency_ms = 100;
  config.fleet.speed = 1e9;  // training takes no time to speak of
  config.round.final_version = 1;
  const auto result = run(config);
  REQUIRE(result.rounds.size() == 1);
  const double model_seconds = 7850 * 4 * 8 / 1e6;
  // Task down (latency + model), update up (latency + values): at least twice each.
  CHECK(result.rounds[0].record.seconds >= 2 * 0.1 + 2 * model_seconds);
  CHECK(result.rounds[0].record.seconds < 2 * 0.1 + 2 * model_seconds + 0.05);
}

TEST_CASE("protocol-only rounds send all-zero updates at once and leave the model as it was") {
  shoal::testing::TempDir dir;
  auto config = tiny_fleet(dir.path(), 5);
  config.protocol_only = true;
  config.round.secure.enabled = GENERATE(false, true);
  config.round.min_devices = 3;
  const auto result = run(config);
  REQUIRE(result.rounds.size() == 2);
  for (const auto& round : result.rounds) {
    CHECK(round.record.applied);
    CHECK(round.test_accuracy == Approx(result.initial_accuracy).margin(0.01));
  }
}

TEST_CASE("a fleet online part of the time, and eligible part of that, still finishes its rounds") {
  shoal::testing::TempDir dir;
  auto config = tiny_fleet(dir.path(), 30);
  config.fleet.online_share = 0.5;
  config.fleet.session_s = 120;
  config.fleet.eligible_share = 0.6;
  config.round.min_devices = 3;
  config.round.fraction = 0.3;
  config.round.final_version = 4;
  const auto result = run(config);
  CHECK(result.rounds.back().record.version_after == 4);
  for (const auto& round : result.rounds) CHECK(round.record.cohort <= 30);
}

TEST_CASE("with one masked upload at a time, a secure round's inputs arrive one after another and it still applies") {
  shoal::testing::TempDir dir;
  auto config = tiny_fleet(dir.path(), 5);
  config.protocol_only = true;
  config.round.secure.enabled = true;
  config.round.min_devices = 5;
  config.round.final_version = 1;
  config.fleet.uplink_mbps = 1;  // a 31 kB masked input takes a quarter second up
  config.fleet.bandwidth_spread = 0;
  config.fleet.speed = 1e9;
  auto masking_seconds = [&](std::size_t upload_memory_bytes) {
    config.round.secure.upload_memory_bytes = upload_memory_bytes;
    const auto result = run(config);
    REQUIRE(result.rounds.size() == 1);
    const auto& record = result.rounds[0].record;
    CHECK(record.applied);
    CHECK(record.reported == 5);
    double sharing_closed = 0, masking_closed = 0;
    for (const auto& phase : record.phases) {
      if (std::string(phase.phase) == "sharing") sharing_closed = phase.seconds;
      if (std::string(phase.phase) == "masking") masking_closed = phase.seconds;
    }
    return masking_closed - sharing_closed;
  };
  const double input_seconds = 7852 * 4 * 8 / 1e6;
  const double at_once = masking_seconds(std::size_t{256} << 20);
  const double one_by_one = masking_seconds(1);  // less than one input: one at a time
  CHECK(at_once < 2 * input_seconds);
  CHECK(one_by_one >= 5 * input_seconds);
}
