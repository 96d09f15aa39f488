#include "shoal/simulations/simulation.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "shoal/client/trainer.h"
#include "shoal/inference/device.h"
#include "shoal/simulations/report.h"
#include "shoal/weights/weights_file.h"
#include "tcp_fleet.h"

namespace shoal::simulations {
namespace fs = std::filesystem;
namespace {

Result<client::Dataset> load_slice(const fs::path& images, const fs::path& labels, std::size_t limit) {
  auto data = client::load_idx(images, labels);
  if (!data || limit == 0 || limit >= data->size()) return data;
  std::vector<std::size_t> first(limit);
  for (std::size_t i = 0; i < limit; ++i) first[i] = i;
  return data->subset(first);
}

Result<inference::Model> make_model(const SimulationConfig& config) {
  return inference::Model::open(config.model, config.model_seed);
}

fs::path default_work_dir() { return fs::temp_directory_path() / ("shoal-sim-" + std::to_string(::getpid())); }

std::size_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

// Memory this machine can still give, from /proc/meminfo; 0 when unknown.
double available_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kilobytes = 0;
  std::string unit;
  while (meminfo >> key >> kilobytes >> unit) {
    if (key == "MemAvailable:") return kilobytes * 1024;
  }
  return 0;
}

std::string gigabytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GB", bytes / 1e9);
  return text;
}

// A fleet the machine cannot hold is refused before anything is allocated
// for it. The figures are upper estimates of what the engine keeps.
Status check_memory(const SimulationConfig& config, std::size_t parameters, std::size_t train_values,
                    std::size_t train_samples) {
  constexpr double kPerDevice = 2048;  // session, identity, key, profile, coordinator entry, events
  const double devices = static_cast<double>(config.devices);
  const double samples_each = config.split.samples_per_device > 0
                                  ? static_cast<double>(config.split.samples_per_device)
                                  : static_cast<double>(train_samples) / devices;
  const double fleet = devices * (kPerDevice + 8 * samples_each);
  const double cohort = std::min(static_cast<double>(config.round.max_devices), std::ceil(config.round.fraction * devices));
  // In flight: each member's update, quantised and masked input, and the server's copy of what it holds.
  const double in_flight = cohort * static_cast<double>(parameters) * 4 * (config.round.secure.enabled ? 4 : 2);
  const double workers = static_cast<double>(config.workers == 0 ? std::max(1u, std::thread::hardware_concurrency())
                                                                 : config.workers);
  const double models = (workers + 4) * static_cast<double>(parameters) * 4 * 4;
  const double data = static_cast<double>(train_values) * 4;
  const double need = fleet + in_flight + models + data;
  const double available = available_bytes();
  if (available <= 0 || need < 0.9 * available) return ok_status();
  return make_error(ErrorCode::invalid_argument,
                    "simulation config: fleet.devices = " + std::to_string(config.devices) + " needs about " +
                        gigabytes(need) + " (" + gigabytes(fleet) + " for the devices, " + gigabytes(in_flight) +
                        " for a cohort of " + std::to_string(static_cast<std::size_t>(cohort)) + " updates in flight, " +
                        gigabytes(models + data) + " for models and data), more than the " + gigabytes(available) +
                        " this machine has available; use fewer devices, fewer samples per device or a smaller "
                        "cohort (cohort.max_devices)");
}

std::string clock_text(double seconds) {
  const auto total = static_cast<long long>(std::llround(seconds));
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60, total % 60);
  return text;
}

// Prints a row (or the progress line) per round as its test evaluation comes in, and keeps the results.
class RoundPrinter {
 public:
  RoundPrinter(const SimulationConfig& config, std::ostream& out, RunOptions options, std::ofstream test_log)
      : config_(config), out_(out), options_(options), test_log_(std::move(test_log)) {}

  void header(const client::Evaluation& initial) {
    if (options_.progress_line) return;
    char line[200];
    std::snprintf(line, sizeof line, "%5s %7s %9s %9s %10s %9s %9s %8s %10s %8s\n", "round", "version", "reported",
                  "samples", "device-acc", "test-loss", "test-acc", "epsilon", "virtual", "wall-s");
    out_ << line;
    std::snprintf(line, sizeof line, "%5d %7d %9s %9s %10s %9.4f %9.4f %8s %10s %8.1f\n", 0, 0, "-", "-", "-",
                  initial.loss, initial.accuracy, "-", clock_text(0).c_str(), 0.0);
    out_ << line << std::flush;
  }

  void print(const RoundOutcome& outcome) {
    const auto& record = outcome.record;
    char epsilon[16] = "-", samples[24] = "-", reported[24];
    if (record.delta > 0) std::snprintf(epsilon, sizeof epsilon, "%.3f", record.epsilon);
    // A secure round knows its samples only through the sum's total weight, and not at all under DP.
    if (record.samples > 0) std::snprintf(samples, sizeof samples, "%llu", static_cast<unsigned long long>(record.samples));
    std::snprintf(reported, sizeof reported, "%zu/%zu", record.reported, record.cohort);
    test_log_ << nlohmann::json{{"event", "test"},
                                {"round", record.round},
                                {"version", record.version_after},
                                {"loss", outcome.test_loss},
                                {"accuracy", outcome.test_accuracy},
                                {"virtual_seconds", outcome.virtual_seconds}}
                     .dump()
              << '\n'
              << std::flush;
    if (options_.progress_line) {
      const double elapsed = outcome.wall_seconds;
      const double remaining = static_cast<double>(config_.round.final_version) - static_cast<double>(record.version_after);
      const double eta = record.version_after > 0 ? elapsed / static_cast<double>(record.version_after) * remaining : 0;
      char line[200];
      std::snprintf(line, sizeof line, "\r\033[Kround %llu/%llu  test accuracy %.4f  virtual %s  wall %.0f s  ETA %.0f s",
                    static_cast<unsigned long long>(record.round),
                    static_cast<unsigned long long>(config_.round.final_version), outcome.test_accuracy,
                    clock_text(outcome.virtual_seconds).c_str(), elapsed, std::max(0.0, eta));
      out_ << line << std::flush;
      return;
    }
    char line[240];
    std::snprintf(line, sizeof line, "%5llu %7llu %9s %9s %10.4f %9.4f %9.4f %8s %10s %8.1f",
                  static_cast<unsigned long long>(record.round), static_cast<unsigned long long>(record.version_after),
                  reported, samples, record.mean_accuracy_after, outcome.test_loss, outcome.test_accuracy, epsilon,
                  clock_text(outcome.virtual_seconds).c_str(), outcome.wall_seconds);
    out_ << line << std::endl;
    // An abandoned round's reason goes on its own line, whole.
    if (!record.applied) out_ << "      abandoned: " << record.abandon_reason << std::endl;
  }

  void finish() {
    if (options_.progress_line) out_ << "\n";
  }

 private:
  const SimulationConfig& config_;
  std::ostream& out_;
  RunOptions options_;
  std::ofstream test_log_;
};

// The chance that a device picked for a round drops out of it somewhere.
double dropout_per_round(const SimulationConfig& config) {
  const auto chances = config.dropout_by_phase();
  double stays = 1;
  for (std::size_t phase = 0; phase < (config.round.secure.enabled ? kDropPhases : 1); ++phase) stays *= 1 - chances[phase];
  return 1 - stays;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Result<SimulationResult> run_simulation(const SimulationConfig& config, std::ostream& out, RunOptions options) {
  if (auto status = config.validate(); !status) return status.error();
  if (config.transport == Transport::tcp) {
    if (auto status = check_tcp_fleet_size(config.devices); !status) return status.error();
  }
  const auto started = Clock::now();
  if (auto status = inference::set_cpu_threads(config.threads); !status) return status.error();
  auto train = load_slice(config.train_images, config.train_labels, config.train_samples);
  if (!train) return train.error();
  auto test = load_slice(config.test_images, config.test_labels, config.test_samples);
  if (!test) return test.error();
  auto evaluator = make_model(config);
  if (!evaluator) return evaluator.error();
  const auto parameters = evaluator->layout().value_count();
  if (config.transport == Transport::engine) {
    if (auto status = check_memory(config, parameters, train->features.size() + test->features.size(), train->size());
        !status) {
      return status.error();
    }
  }
  auto partition = simulations::partition(train->labels, config.partition_spec());
  if (!partition) return make_error(partition.error().code, "simulation config: " + partition.error().message);

  const auto work_dir = config.work_dir.empty() ? default_work_dir() : config.work_dir;
  std::error_code error;
  fs::remove_all(work_dir / "aggregator", error);  // every run starts from the initial model
  fs::create_directories(work_dir, error);
  if (error) return make_error(ErrorCode::io, "cannot create " + work_dir.string() + ": " + error.message());
  for (const char* stale : {"test_set.jsonl", "wall_clock.jsonl", "report.svg"}) fs::remove(work_dir / stale, error);
  if (auto status = weights::write_weights_file(work_dir / "initial.weights", evaluator->get_weights(0)); !status) {
    return status.error();
  }
  aggregator::AggregatorConfig server;
  server.initial_weights = work_dir / "initial.weights";
  server.state_dir = work_dir / "aggregator";
  server.round = config.round;
  server.strategy = config.strategy;

  out << "fleet of " << config.devices << " devices (" << split_name(config.split.split)
      << (config.split.split == SplitKind::dirichlet ? " alpha " + std::to_string(config.split.alpha).substr(0, 4) : "")
      << (config.split.samples_per_device > 0 ? ", " + std::to_string(config.split.samples_per_device) + " samples each"
                                              : "")
      << "), model " << config.model << ", " << config.round.final_version << " rounds, "
      << (config.round.secure.enabled ? "secure aggregation" : "plain aggregation")
      << (config.round.privacy.enabled() ? " with differential privacy" : "") << ", dropout "
      << static_cast<int>(std::lround(dropout_per_round(config) * 100)) << "%, "
      << (config.transport == Transport::tcp ? "real agents over loopback CurveZMQ" : "virtual time")
      << "; logs, checkpoints and report in " << work_dir.string() << "\n";

  SimulationResult result;
  result.work_dir = work_dir;
  auto initial = client::evaluate(*evaluator, *test);
  if (!initial) return initial.error();
  result.initial_loss = initial->loss;
  result.initial_accuracy = initial->accuracy;
  RoundPrinter printer(config, out, options, std::ofstream(work_dir / "test_set.jsonl"));
  printer.header(*initial);
  std::ofstream server_log(work_dir / "aggregator.log");
  std::ofstream device_log_file(work_dir / "devices.log");
  std::mutex device_log_mutex;
  client::LogSink device_log = [&](const std::string& line) {
    std::lock_guard lock(device_log_mutex);
    device_log_file << line << '\n';
  };

  if (config.transport == Transport::tcp) {
    auto status = run_tcp_fleet(config, server, *train, *partition, work_dir, server_log,
                                [&](const aggregator::RoundRecord& record, const aggregator::RoundCosts& costs,
                                    const weights::Weights& global) -> Status {
                                  if (auto loaded = evaluator->set_weights(global); !loaded) return loaded;
                                  auto evaluation = client::evaluate(*evaluator, *test);
                                  if (!evaluation) return evaluation.error();
                                  const double now = seconds_since(started);
                                  result.rounds.push_back({record, costs, evaluation->loss, evaluation->accuracy, now, now});
                                  printer.print(result.rounds.back());
                                  return ok_status();
                                });
    if (!status) return status.error();
    result.virtual_seconds = seconds_since(started);
  } else {
    auto pool = TrainerPool::create(config.workers, [&] { return make_model(config); });
    if (!pool) return pool.error();
    EngineSettings settings;
    settings.server = server;
    settings.wall_clock_log = work_dir / "wall_clock.jsonl";
    settings.fleet = config.fleet;
    settings.fleet.dropout = config.dropout_by_phase();
    settings.seed = config.seed;
    settings.model_name = evaluator->name();
    settings.protocol_only = config.protocol_only;
    settings.session_threads = config.workers;
    auto engine = FleetEngine::create(settings, *train, *partition, **pool, server_log, device_log);
    if (!engine) return engine.error();
    // Each round's test evaluation runs on the pool beside the next round's
    // training; rows are printed in order as their evaluations finish.
    struct Pending {
      RoundOutcome outcome;
      std::shared_ptr<Result<client::Evaluation>> evaluation;
      TrainerPool::Ticket ticket;
    };
    std::vector<Pending> pending;
    std::size_t printed = 0;
    auto print_ready = [&](bool wait) -> Status {
      for (; printed < pending.size(); ++printed) {
        auto& next = pending[printed];
        if (!wait && !(*pool)->ready(next.ticket)) break;
        if (auto status = (*pool)->wait(next.ticket); !status) return status;
        if (!*next.evaluation) return next.evaluation->error();
        next.outcome.test_loss = (*next.evaluation)->loss;
        next.outcome.test_accuracy = (*next.evaluation)->accuracy;
        result.rounds.push_back(next.outcome);
        printer.print(result.rounds.back());
      }
      return ok_status();
    };
    (*engine)->set_observer([&](const aggregator::RoundRecord& record, const aggregator::RoundCosts& costs,
                                const weights::Weights& global, VirtualTime now) -> Status {
      auto model = std::make_shared<weights::Weights>(global);
      auto evaluation = std::make_shared<Result<client::Evaluation>>(client::Evaluation{});
      const double virtual_seconds = std::chrono::duration<double>(now).count();
      auto ticket = (*pool)->submit({virtual_seconds, pending.size()}, [&test = *test, model, evaluation](inference::Model& local) {
        if (auto status = local.set_weights(*model); !status) {
          *evaluation = status.error();
          return;
        }
        *evaluation = client::evaluate(local, test);
      });
      pending.push_back({{record, costs, 0, 0, virtual_seconds, seconds_since(started)}, evaluation, ticket});
      return print_ready(false);
    });
    if (auto status = (*engine)->run(); !status) return status.error();
    if (auto status = print_ready(true); !status) return status.error();
    result.virtual_seconds = std::chrono::duration<double>((*engine)->now()).count();
    result.wall = (*engine)->wall_clock();
    result.events = (*engine)->events();
    result.trained_devices = (*engine)->trained_devices();
  }
  printer.finish();
  result.final_accuracy = result.rounds.empty() ? result.initial_accuracy : result.rounds.back().test_accuracy;
  result.seconds = seconds_since(started);
  result.peak_rss_bytes = peak_rss_bytes();
  result.report = work_dir / "report.svg";
  if (auto status = write_report(result.report, config, result); !status) return status.error();
  return result;
}

}  // namespace shoal::simulations
