// A fleet simulation: a dataset split across N devices, the real aggregator
// logic and the real device logic, in one process, with a pass/fail gate on
// the global model's test accuracy. After every round the simulator
// evaluates the global model centrally on the test set, which real
// deployments cannot do.
//
// Two transports:
//   engine  (default) the fleet engine: every device a DeviceSession on a
//           virtual clock, training on a pool of workers (fleet_engine.h);
//           fleets of 100,000 devices, and the same seed repeats byte for byte
//   tcp     real agents (client::Agent, one thread each) and the real
//           AggregatorServer over loopback CurveZMQ, in real time: an
//           end-to-end check for small fleets
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "shoal/aggregator/round_coordinator.h"
#include "shoal/aggregator/server_optimizer.h"
#include "shoal/simulations/fleet_engine.h"
#include "shoal/simulations/fleet_model.h"
#include "shoal/simulations/partition.h"

namespace shoal::simulations {

enum class Transport { engine, tcp };
Result<Transport> parse_transport(std::string_view name);

struct SimulationConfig {
  std::size_t devices = 20;
  PartitionSpec split;            // split.devices and split.seed follow devices and seed
  std::uint64_t seed = 0;         // the split, the fleet's profiles, identities and randomness
  std::string model = "mlp";      // zoo name or TorchScript file
  std::uint64_t model_seed = 1;
  int threads = 0;                // libtorch CPU threads over tcp; 0: one per core (the engine's workers use one each)
  std::filesystem::path train_images, train_labels, test_images, test_labels;
  std::size_t train_samples = 0;  // use only the first N training samples; 0: all
  std::size_t test_samples = 0;   // likewise for the test set
  double expect_accuracy = 0;     // final test accuracy below this fails the run
  double dropout = 0;             // fleet.dropout: chance a device picked for a round vanishes, at a uniform phase
  FleetModelConfig fleet;         // [devices] and [dropout] (the engine)
  Transport transport = Transport::engine;
  std::size_t workers = 0;        // the engine's training threads, and its session threads; 0: one per core
  bool protocol_only = false;     // benchmarks: train nothing, send all-zero updates at once
  std::filesystem::path work_dir; // checkpoints, logs, report; empty: a new directory under /tmp
  aggregator::RoundConfig round;  // round.final_version is the number of rounds
  aggregator::StrategyConfig strategy;

  Status validate() const;
  // The per-phase dropout chances: [dropout] as given, or fleet.dropout spread so
  // that a device drops with that chance at a phase drawn uniformly.
  std::array<double, kDropPhases> dropout_by_phase() const;
  // How the training set is split: `split` with the fleet's size and seed.
  PartitionSpec partition_spec() const;
};

// Reads [fleet], [devices], [dropout], [data], [model] and the aggregator's round sections.
Result<SimulationConfig> load_simulation_config(const std::filesystem::path& path);

struct RoundOutcome {
  aggregator::RoundRecord record;
  aggregator::RoundCosts costs;
  double test_loss = 0;
  double test_accuracy = 0;
  double virtual_seconds = 0;  // when it closed (the engine; wall seconds over tcp)
  double wall_seconds = 0;     // since the run started
};

struct SimulationResult {
  std::vector<RoundOutcome> rounds;
  double initial_loss = 0;
  double initial_accuracy = 0;
  double final_accuracy = 0;
  double seconds = 0;          // wall time, set-up included
  double virtual_seconds = 0;  // the engine's clock at the end
  WallClockSplit wall;         // the engine's
  std::uint64_t events = 0;    // the engine's
  std::vector<std::uint32_t> trained_devices;  // the engine's training jobs, by device, in the order asked
  std::size_t peak_rss_bytes = 0;
  std::filesystem::path work_dir;
  std::filesystem::path report;  // report.svg
};

struct RunOptions {
  bool progress_line = false;  // one line rewritten in place (a terminal) instead of a row per round
};

// Runs until round.final_version; prints progress to `out`.
Result<SimulationResult> run_simulation(const SimulationConfig& config, std::ostream& out, RunOptions options = {});

}  // namespace shoal::simulations
