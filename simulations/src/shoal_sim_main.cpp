// shoal-sim: runs a federated fleet on one machine.
//
//   shoal-sim --config configs/quickstart.toml [--rounds 30] [--devices 20]
//             [--alpha 0.5] [--transport engine|tcp] [--workers 2]
//             [--expect-accuracy 0.80] [--work-dir DIR]
//
// Exits 0 when the final test accuracy reaches --expect-accuracy (or the
// config's fleet.expect_accuracy), 2 when it does not, 1 on an error.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "shoal/simulations/simulation.h"

using namespace shoal;

int main(int argc, char** argv) {
  CLI::App app{"shoal-sim: a federated fleet on the real aggregator and device logic, in one process"};
  std::filesystem::path config_path, work_dir;
  std::optional<std::uint64_t> rounds;
  std::optional<std::size_t> devices, workers;
  std::optional<double> alpha, expect_accuracy;
  std::optional<std::string> transport;
  app.add_option("--config", config_path, "simulation TOML file (configs/quickstart.toml documents every key)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--rounds", rounds, "override fleet.rounds")->check(CLI::PositiveNumber);
  app.add_option("--devices", devices, "override fleet.devices")->check(CLI::PositiveNumber);
  app.add_option("--alpha", alpha, "override fleet.alpha (dirichlet split)")->check(CLI::PositiveNumber);
  app.add_option("--transport", transport, "override fleet.transport: engine (virtual time) or tcp (real agents)")
      ->check(CLI::IsMember({"engine", "tcp"}));
  app.add_option("--workers", workers, "override fleet.workers (training threads of the engine; 0: one per core)");
  app.add_option("--expect-accuracy", expect_accuracy, "fail (exit 2) below this final test accuracy")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--work-dir", work_dir, "override fleet.work_dir (checkpoints, logs, report)");
  CLI11_PARSE(app, argc, argv);

  auto config = simulations::load_simulation_config(config_path);
  if (!config) {
    std::cerr << "shoal-sim: " << config.error().describe() << "\n";
    return 1;
  }
  if (rounds) config->round.final_version = *rounds;
  if (devices) config->devices = *devices;
  if (alpha) config->split.alpha = *alpha;
  if (transport) config->transport = *simulations::parse_transport(*transport);
  if (workers) config->workers = *workers;
  if (expect_accuracy) config->expect_accuracy = *expect_accuracy;
  if (!work_dir.empty()) config->work_dir = work_dir;

  auto result = simulations::run_simulation(*config, std::cout, {.progress_line = isatty(STDOUT_FILENO) == 1});
  if (!result) {
    std::cerr << "shoal-sim: " << result.error().describe() << "\n";
    return 1;
  }
  const auto rounds_run = static_cast<double>(std::max<std::size_t>(result->rounds.size(), 1));
  std::printf("final test accuracy %.4f (from %.4f) after %zu rounds in %.1f s (%.2f virtual hours)\n",
              result->final_accuracy, result->initial_accuracy, result->rounds.size(), result->seconds,
              result->virtual_seconds / 3600);
  if (config->transport == simulations::Transport::engine) {
    const auto& wall = result->wall;
    std::printf("wall time per round: training %.2f s, secure aggregation %.2f s on devices and %.2f s on the server, "
                "coordination %.2f s; %llu events; peak RSS %.0f MB\n",
                wall.training / rounds_run, wall.secure_device / rounds_run, wall.secure_server / rounds_run,
                wall.coordination / rounds_run, static_cast<unsigned long long>(result->events),
                static_cast<double>(result->peak_rss_bytes) / 1e6);
  }
  std::printf("report: %s\n", result->report.string().c_str());
  if (result->final_accuracy < config->expect_accuracy) {
    std::printf("FAILED: expected at least %.4f\n", config->expect_accuracy);
    return 2;
  }
  if (config->expect_accuracy > 0) std::printf("reached the expected %.4f\n", config->expect_accuracy);
  return 0;
}
