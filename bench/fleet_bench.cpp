// fleet_bench: the fleet engine's figures, each beside a baseline measured
// in the same run.
//
//  1. Quick start (configs/quickstart.toml: 20 devices, secure, 10% dropout,
//     20 rounds) on the engine, its whole wall time, against a bare libtorch
//     loop that trains the same updates: every training job the engine ran,
//     on the same device's samples with the same epochs, batch size and
//     learning rate, one after another with every core (target <= 1.2x).
//  2. Scale: configs/fleet-100k.toml and configs/fleet-10k.toml, each in a
//     shoal-sim process of its own: seconds per round split into training,
//     secure aggregation (devices, server) and coordination, and the peak
//     RSS (100k target <= 4 GB).
//  3. Protocol-only throughput: rounds per second at 1k, 10k and 100k
//     devices (1,000 a round, secure, 10% dropout, all-zero updates at once),
//     beside the share of the wall time SecAgg+'s own work takes.
//
// Usage: fleet_bench [--smoke] [--skip-scale]
//   --smoke: 2 quick-start rounds, the 10k config with 2,000 devices for one
//   round, protocol-only at 1k; what CI runs so the benchmark cannot rot.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>
#include <string>

#include "child_process.h"
#include "shoal/base/durable_file.h"
#include "shoal/client/trainer.h"
#include "shoal/inference/device.h"
#include "shoal/inference/torch_model.h"
#include "shoal/simulations/simulation.h"
#include "temp_dir.h"

using namespace shoal;
using shoal::testing::ChildProcess;
using shoal::testing::TempDir;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "fleet_bench: %s\n", why.c_str());
  std::exit(1);
}

simulations::SimulationConfig load(const std::string& name) {
  auto config = simulations::load_simulation_config(fs::path(SHOAL_CONFIGS) / name);
  if (!config) die(config.error().describe());
  return std::move(config).value();
}

simulations::SimulationResult simulate(const simulations::SimulationConfig& config) {
  std::ostringstream out;
  auto result = simulations::run_simulation(config, out);
  if (!result) die(result.error().describe() + "\n" + out.str());
  return std::move(result).value();
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// What a libtorch user writes to train the same jobs: the dataset as one
// tensor, a device's indices as another, randperm, index_select, SGD, on
// `threads` libtorch threads.
double bare_training_seconds(const simulations::SimulationConfig& config, const simulations::SimulationResult& run,
                             int threads) {
  auto train = client::load_idx(config.train_images, config.train_labels);
  if (!train) die(train.error().describe());
  auto partition = simulations::partition(train->labels, config.partition_spec());
  if (!partition) die(partition.error().describe());
  if (!inference::set_cpu_threads(threads)) die("cannot set libtorch's threads");
  auto model = inference::Model::open(config.model, config.model_seed);
  if (!model) die(model.error().describe());
  const auto start_weights = model->get_weights(0);
  const auto inputs = torch::from_blob(train->features.data(), {static_cast<std::int64_t>(train->size()), 1, 28, 28});
  const auto labels = torch::tensor(train->labels, torch::kInt64);
  const auto& plan = config.round.plan;
  const auto batch = static_cast<std::int64_t>(plan.batch_size);
  auto& module = model->backend();
  std::vector<torch::Tensor> parameters;
  for (auto& [name, tensor] : module.named_parameters()) parameters.push_back(tensor);
  const auto started = Clock::now();
  for (const auto device : run.trained_devices) {
    (void)model->set_weights(start_weights);
    const auto& samples = (*partition)[device];
    std::vector<std::int64_t> owned(samples.begin(), samples.end());
    const auto indices = torch::tensor(owned, torch::kInt64);
    torch::optim::SGD optimizer(parameters, torch::optim::SGDOptions(plan.learning_rate).momentum(plan.momentum));
    module.train(true);
    for (std::uint64_t epoch = 0; epoch < plan.epochs; ++epoch) {
      const auto order = indices.index_select(0, torch::randperm(indices.size(0), torch::kInt64));
      for (std::int64_t at = 0; at < order.size(0); at += batch) {
        const auto picked = order.slice(0, at, std::min(at + batch, order.size(0)));
        optimizer.zero_grad();
        auto loss = torch::nn::functional::cross_entropy(module.forward(inputs.index_select(0, picked)),
                                                         labels.index_select(0, picked));
        loss.backward();
        optimizer.step();
      }
    }
  }
  return seconds_since(started);
}

void quick_start(bool smoke) {
  auto config = load("quickstart.toml");
  TempDir dir;
  config.work_dir = dir.path();
  if (smoke) config.round.final_version = 2;
  const auto started = Clock::now();
  const auto run = simulate(config);
  const double engine = seconds_since(started);
  // The bare loop gets its better thread count: every core, or one (small batches often run faster on one).
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const double bare_all = bare_training_seconds(config, run, cores);
  const double bare_one = cores > 1 ? bare_training_seconds(config, run, 1) : bare_all;
  const double bare = std::min(bare_all, bare_one);
  std::printf("quick start: %zu devices, %s, %zu rounds (%zu training jobs), final test accuracy %.4f\n",
              config.devices, config.model.c_str(), run.rounds.size(), run.trained_devices.size(), run.final_accuracy);
  std::printf("  shoal-sim on the engine   %8.1f s wall (%d workers; data loading, secure rounds and test evaluations included)\n",
              engine, cores);
  std::printf("  bare libtorch loop        %8.1f s with %d threads, %.1f s with 1: the same jobs one after another\n",
              bare_all, cores, bare_one);
  std::printf("  ratio to the faster       %8.3fx (target <= 1.2x)\n", engine / bare);
}

struct Split {
  double training = 0, secure_device = 0, secure_server = 0, coordination = 0, rss_mb = 0, wall = 0, accuracy = 0;
  unsigned long long events = 0;
  std::size_t rounds = 0;
};

// Runs shoal-sim in a process of its own, so its peak RSS is its own.
// `edits` replace whole lines of the config ("devices = 2000" for "devices = ...").
Split scale_run(const std::string& config, const std::vector<std::string>& overrides,
                const std::vector<std::string>& edits = {}) {
  TempDir dir;
  auto text = base::read_file(fs::path(SHOAL_CONFIGS) / config, 1 << 20);
  if (!text) die(text.error().describe());
  for (const auto& edit : edits) {
    const auto key = edit.substr(0, edit.find(' '));
    const auto at = text->find("\n" + key + " = ");
    if (at == std::string::npos) die(config + " has no key " + key);
    text->replace(at + 1, text->find('\n', at + 1) - at - 1, edit);
  }
  const auto edited = dir.path() / config;
  if (!base::write_file_durably(edited, *text)) die("cannot write " + edited.string());
  std::vector<std::string> argv{SHOAL_SIM, "--config", edited.string(), "--work-dir", (dir.path() / "work").string()};
  argv.insert(argv.end(), overrides.begin(), overrides.end());
  ChildProcess sim(argv, dir.path() / "sim.log");
  const int status = sim.wait();
  const auto log = sim.log();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(config + " failed:\n" + log);
  Split split;
  const auto accuracy = log.find("final test accuracy ");
  const auto wall = log.find("wall time per round: ");
  if (accuracy == std::string::npos || wall == std::string::npos) die(config + ": no summary in\n" + log);
  std::sscanf(log.c_str() + accuracy, "final test accuracy %lf (from %*f) after %zu rounds in %lf s", &split.accuracy,
              &split.rounds, &split.wall);
  std::sscanf(log.c_str() + wall,
              "wall time per round: training %lf s, secure aggregation %lf s on devices and %lf s on the server, "
              "coordination %lf s; %llu events; peak RSS %lf MB",
              &split.training, &split.secure_device, &split.secure_server, &split.coordination, &split.events,
              &split.rss_mb);
  return split;
}

void scale(bool smoke) {
  std::printf("scale: seconds per round of wall time, each config in its own shoal-sim process\n");
  std::printf("%-16s %6s %9s %11s %11s %11s %13s %9s %10s\n", "config", "rounds", "training", "secure-dev",
              "secure-srv", "coordinate", "peak RSS", "wall-s", "test-acc");
  auto row = [](const std::string& name, const Split& split, const char* target) {
    std::printf("%-16s %6zu %9.2f %11.2f %11.2f %11.2f %10.0f MB %9.1f %10.4f  %s\n", name.c_str(), split.rounds,
                split.training, split.secure_device, split.secure_server, split.coordination, split.rss_mb, split.wall,
                split.accuracy, target);
  };
  if (smoke) {
    row("fleet-10k (2k)",
        scale_run("fleet-10k.toml", {"--rounds", "1"}, {"devices = 2000", "min_available = 2000", "fraction = 0.1"}), "");
    return;
  }
  const auto hundred = scale_run("fleet-100k.toml", {});
  row("fleet-100k", hundred, hundred.rss_mb <= 4000 ? "(target <= 4 GB: met)" : "(target <= 4 GB: MISSED)");
  row("fleet-10k", scale_run("fleet-10k.toml", {}), "");
}

void protocol_only(bool smoke) {
  std::printf("protocol only: 1,000 devices a round (or the whole fleet), secure, 10%% dropout, all-zero updates\n");
  std::printf("%10s %8s %12s %14s %16s\n", "devices", "rounds", "rounds/s", "SecAgg+ share", "virtual s/round");
  for (std::size_t devices : {1'000, 10'000, 100'000}) {
    if (smoke && devices > 1'000) break;
    auto config = load("fleet-100k.toml");
    TempDir dir;
    config.work_dir = dir.path();
    config.devices = devices;
    config.round.min_available = devices;
    config.round.fraction = std::min(1.0, 1000.0 / static_cast<double>(devices));
    config.round.final_version = smoke ? 1 : 3;
    config.protocol_only = true;
    const auto started = Clock::now();
    const auto run = simulate(config);
    const double wall = seconds_since(started);
    const double secure = run.wall.secure_device + run.wall.secure_server;
    const auto rounds = static_cast<double>(run.rounds.size());
    std::printf("%10zu %8zu %12.3f %13.0f%% %16.1f\n", devices, run.rounds.size(), rounds / wall,
                100 * secure / wall, run.virtual_seconds / rounds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool smoke = false, skip_scale = false;
  CLI::App app{"the fleet engine against bare libtorch, at scale, and without training"};
  app.add_flag("--smoke", smoke, "a short run of every part, for CI");
  app.add_flag("--skip-scale", skip_scale, "leave out the 100k and 10k configs");
  CLI11_PARSE(app, argc, argv);
  quick_start(smoke);
  if (!skip_scale) scale(smoke);
  protocol_only(smoke);
  return 0;
}
