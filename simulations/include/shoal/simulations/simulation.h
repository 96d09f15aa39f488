// A fleet simulation: the real aggregator (AggregatorServer, with its
// checkpoints and metrics log) and N real agents (client::Agent) in one
// process, talking CurveZMQ over loopback TCP, on a dataset split across the
// devices. After every round the simulator evaluates the global model
// centrally on the test set, which real deployments cannot do.
//
// The agents take turns on the CPU (one trains at a time, with every core),
// so a simulated round costs about the sum of the cohort's training.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "shoal/aggregator/round_coordinator.h"
#include "shoal/aggregator/server_optimizer.h"
#include "shoal/simulations/partition.h"

namespace shoal::simulations {

struct SimulationConfig {
  std::size_t devices = 20;
  SplitKind split = SplitKind::dirichlet;
  double alpha = 0.5;        // dirichlet concentration
  std::uint64_t seed = 0;    // the split
  std::string model = "mlp"; // zoo name or TorchScript file
  std::uint64_t model_seed = 1;
  int threads = 0;           // libtorch CPU threads; 0: one per core
  std::filesystem::path train_images, train_labels, test_images, test_labels;
  std::size_t train_samples = 0;  // use only the first N training samples; 0: all
  std::size_t test_samples = 0;   // likewise for the test set
  double expect_accuracy = 0;     // final test accuracy below this fails the run
  double dropout = 0;             // chance a device picked for a round drops out of it, at a random phase
  std::filesystem::path work_dir; // keys, checkpoints, logs; empty: a new directory under /tmp
  aggregator::RoundConfig round;  // round.final_version is the number of rounds
  aggregator::StrategyConfig strategy;

  Status validate() const;
};

// Reads [fleet], [data], [model] and the aggregator's round sections.
Result<SimulationConfig> load_simulation_config(const std::filesystem::path& path);

struct RoundOutcome {
  aggregator::RoundRecord record;
  double test_loss = 0;
  double test_accuracy = 0;
};

struct SimulationResult {
  std::vector<RoundOutcome> rounds;
  double initial_accuracy = 0;
  double final_accuracy = 0;
  double seconds = 0;
  std::filesystem::path work_dir;
};

// Runs until round.final_version; prints a table of rounds to `out`.
Result<SimulationResult> run_simulation(const SimulationConfig& config, std::ostream& out);

}  // namespace shoal::simulations
