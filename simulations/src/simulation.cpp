#include "shoal/simulations/simulation.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "shoal/aggregator/aggregator_config.h"
#include "shoal/aggregator/aggregator_server.h"
#include "shoal/client/agent.h"
#include "shoal/client/trainer.h"
#include "shoal/crypto/durable_file.h"
#include "shoal/crypto/key_file.h"
#include "shoal/inference/device.h"
#include "shoal/weights/weights_file.h"

namespace shoal::simulations {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

Error invalid(const std::string& what) { return make_error(ErrorCode::invalid_argument, "simulation config: " + what); }

Result<client::Dataset> load_slice(const fs::path& images, const fs::path& labels, std::size_t limit) {
  auto data = client::load_idx(images, labels);
  if (!data || limit == 0 || limit >= data->size()) return data;
  std::vector<std::size_t> first(limit);
  for (std::size_t i = 0; i < limit; ++i) first[i] = i;
  return data->subset(first);
}

Result<inference::Model> make_model(const SimulationConfig& config) {
  return fs::exists(config.model) ? inference::Model::load_torchscript(config.model)
                                  : inference::Model::from_zoo(config.model, config.model_seed);
}

// The keys and files a real deployment would have: a server key, an
// enrolment list naming every device, the initial model.
struct Fleet {
  std::vector<crypto::IdentityKeyPair> device_keys;
  std::optional<crypto::PublicIdentity> server_identity;
  aggregator::AggregatorConfig server;
};

Result<Fleet> prepare_fleet(const SimulationConfig& config, const fs::path& work_dir, const weights::Weights& initial) {
  Fleet fleet;
  std::error_code error;
  fs::remove_all(work_dir / "aggregator", error);  // every run starts from the initial model
  fs::create_directories(work_dir, error);
  if (error) return make_error(ErrorCode::io, "cannot create " + work_dir.string() + ": " + error.message());
  const auto server_key = crypto::IdentityKeyPair::generate();
  fleet.server_identity = server_key.public_identity();
  if (auto status = crypto::save_identity_key(work_dir / "server.key", {crypto::KeyRole::server, server_key}); !status) {
    return status.error();
  }
  std::string enrolment = "# the simulated fleet\n";
  for (std::size_t i = 0; i < config.devices; ++i) {
    fleet.device_keys.push_back(crypto::IdentityKeyPair::generate());
    enrolment += crypto::format_ed25519_public(fleet.device_keys.back().public_identity().ed25519()) + " device-" +
                 std::to_string(i) + "\n";
  }
  if (auto status = crypto::write_file_durably(work_dir / "enrolled.txt", enrolment); !status) return status.error();
  if (auto status = weights::write_weights_file(work_dir / "initial.weights", initial); !status) return status.error();
  fleet.server.bind = "tcp://127.0.0.1:*";
  fleet.server.server_key = work_dir / "server.key";
  fleet.server.enrolment = work_dir / "enrolled.txt";
  fleet.server.initial_weights = work_dir / "initial.weights";
  fleet.server.state_dir = work_dir / "aggregator";
  fleet.server.round = config.round;
  fleet.server.strategy = config.strategy;
  return fleet;
}

// A device's dropouts: each round it is picked for, it drops with chance
// `dropout`, at a phase drawn uniformly (plain rounds have only one).
std::function<client::DropPoint(std::uint64_t)> dropout_plan(const SimulationConfig& config, std::size_t device) {
  auto generator = std::make_shared<std::mt19937_64>(config.seed * 1'000'003 + device);
  const bool secure = config.round.secure.enabled;
  return [generator, secure, p = config.dropout](std::uint64_t) {
    if (std::uniform_real_distribution<double>(0, 1)(*generator) >= p) return client::DropPoint::none;
    if (!secure) return client::DropPoint::before_report;
    return static_cast<client::DropPoint>(1 + (*generator)() % 4);
  };
}

fs::path default_work_dir() {
  return fs::temp_directory_path() / ("shoal-sim-" + std::to_string(::getpid()));
}

}  // namespace

Status SimulationConfig::validate() const {
  if (devices == 0) return invalid("fleet.devices must be at least 1");
  if (split == SplitKind::dirichlet && !(alpha > 0)) return invalid("fleet.alpha must be positive");
  if (train_images.empty() || train_labels.empty()) return invalid("data.train_images and data.train_labels are required");
  if (test_images.empty() || test_labels.empty()) return invalid("data.test_images and data.test_labels are required");
  if (!(expect_accuracy >= 0 && expect_accuracy <= 1)) return invalid("fleet.expect_accuracy must be in [0, 1]");
  if (!(dropout >= 0 && dropout < 1)) return invalid("fleet.dropout must be in [0, 1)");
  if (round.final_version == 0) return invalid("fleet.rounds must be at least 1");
  if (round.min_devices > devices) return invalid("cohort.min_devices exceeds fleet.devices");
  if (auto status = round.validate(); !status) return status;
  return strategy.validate();
}

Result<SimulationConfig> load_simulation_config(const fs::path& path) {
  auto file = config::ConfigFile::load(path);
  if (!file) return file.error();
  SimulationConfig config;
  file->read("fleet.devices", config.devices);
  file->read_choice("fleet.split", config.split, parse_split);
  file->read("fleet.alpha", config.alpha);
  file->read("fleet.seed", config.seed);
  file->read("fleet.rounds", config.round.final_version);
  file->read("fleet.expect_accuracy", config.expect_accuracy);
  file->read("fleet.dropout", config.dropout);
  file->read_path("fleet.work_dir", config.work_dir);
  file->read("model.name", config.model);
  file->read("model.seed", config.model_seed);
  file->read("model.threads", config.threads);
  file->read_path("data.train_images", config.train_images);
  file->read_path("data.train_labels", config.train_labels);
  file->read_path("data.test_images", config.test_images);
  file->read_path("data.test_labels", config.test_labels);
  file->read("data.train_samples", config.train_samples);
  file->read("data.test_samples", config.test_samples);
  aggregator::read_round_settings(*file, config.round, config.strategy);
  if (auto status = file->finish(); !status) return status.error();
  if (auto status = config.validate(); !status) return make_error(status.error().code, path.string() + ": " + status.error().message);
  return config;
}

Result<SimulationResult> run_simulation(const SimulationConfig& config, std::ostream& out) {
  if (auto status = config.validate(); !status) return status.error();
  const auto started = Clock::now();
  if (auto status = inference::set_cpu_threads(config.threads); !status) return status.error();
  auto train = load_slice(config.train_images, config.train_labels, config.train_samples);
  if (!train) return train.error();
  auto test = load_slice(config.test_images, config.test_labels, config.test_samples);
  if (!test) return test.error();
  Result<Partition> partition = config.split == SplitKind::iid
                                    ? Result<Partition>(partition_iid(train->size(), config.devices, config.seed))
                                    : partition_dirichlet(train->labels, config.devices, config.alpha, config.seed);
  if (!partition) return partition.error();

  auto evaluator = make_model(config);
  if (!evaluator) return evaluator.error();
  const auto work_dir = config.work_dir.empty() ? default_work_dir() : config.work_dir;
  auto fleet = prepare_fleet(config, work_dir, evaluator->get_weights(0));
  if (!fleet) return fleet.error();

  std::ofstream server_log(work_dir / "aggregator.log");
  auto server = aggregator::AggregatorServer::open(fleet->server, server_log);
  if (!server) return server.error();
  const auto endpoint = (*server)->endpoint();

  SimulationResult result;
  result.work_dir = work_dir;
  std::mutex compute_gate;  // one trainer at a time, using every core
  auto initial = client::evaluate(*evaluator, *test);
  if (!initial) return initial.error();
  result.initial_accuracy = initial->accuracy;

  std::ofstream agent_log_file(work_dir / "agents.log");
  std::mutex agent_log_mutex;
  client::LogSink agent_log = [&](const std::string& line) {
    std::lock_guard lock(agent_log_mutex);
    agent_log_file << line << '\n';
  };
  // Every device knows its peers' identity keys, as an enrolment list handed out to the fleet would tell it.
  client::TrustedPeers peers;
  for (const auto& key : fleet->device_keys) peers.insert(key.public_identity().ed25519());
  std::vector<std::unique_ptr<client::Agent>> agents;
  for (std::size_t i = 0; i < config.devices; ++i) {
    auto model = make_model(config);
    if (!model) return model.error();
    client::AgentOptions options;
    options.name = "device-" + std::to_string(i);
    options.endpoint = endpoint;
    options.server = fleet->server_identity;
    options.compute_gate = &compute_gate;
    options.trusted_peers = peers;
    if (config.dropout > 0) options.drop_out = dropout_plan(config, i);
    auto agent = client::Agent::create(options, fleet->device_keys[i], std::move(model).value(),
                                       train->subset((*partition)[i]), client::Dataset{}, agent_log);
    if (!agent) return agent.error();
    agents.push_back(std::move(agent).value());
  }

  out << "fleet of " << config.devices << " devices (" << (config.split == SplitKind::iid ? "iid" : "dirichlet alpha ")
      << (config.split == SplitKind::iid ? "" : std::to_string(config.alpha).substr(0, 4)) << "), model " << config.model
      << ", " << config.round.final_version << " rounds, "
      << (config.round.secure.enabled ? "secure aggregation" : "plain aggregation")
      << (config.round.privacy.enabled() ? " with differential privacy" : "") << ", dropout "
      << static_cast<int>(std::lround(config.dropout * 100)) << "%; logs and checkpoints in " << work_dir.string() << "\n";
  char line[200];
  std::snprintf(line, sizeof line, "%5s %7s %8s %9s %10s %9s %9s %8s %8s\n", "round", "version", "reported", "samples",
                "device-acc", "test-loss", "test-acc", "epsilon", "time-s");
  out << line;
  std::snprintf(line, sizeof line, "%5d %7d %8s %9s %10s %9.4f %9.4f %8s %8.1f\n", 0, 0, "-", "-", "-", initial->loss,
                initial->accuracy, "-", 0.0);
  out << line << std::flush;

  Status observer_status = ok_status();
  (*server)->set_observer([&](const aggregator::RoundRecord& record, const weights::Weights& global) {
    RoundOutcome outcome{record};
    std::lock_guard lock(compute_gate);
    if (auto status = evaluator->set_weights(global); !status) {
      observer_status = status;
      return;
    }
    auto evaluation = client::evaluate(*evaluator, *test);
    if (!evaluation) {
      observer_status = evaluation.error();
      return;
    }
    outcome.test_loss = evaluation->loss;
    outcome.test_accuracy = evaluation->accuracy;
    result.rounds.push_back(outcome);
    const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    char epsilon[16] = "-", samples[24] = "-";
    if (record.delta > 0) std::snprintf(epsilon, sizeof epsilon, "%.3f", record.epsilon);
    // A secure round knows its samples only through the sum's total weight, and not at all under DP.
    if (record.samples > 0) std::snprintf(samples, sizeof samples, "%llu", static_cast<unsigned long long>(record.samples));
    std::snprintf(line, sizeof line, "%5llu %7llu %5zu/%-2zu %9s %10.4f %9.4f %9.4f %8s %8.1f",
                  static_cast<unsigned long long>(record.round), static_cast<unsigned long long>(record.version_after),
                  record.reported, record.cohort, samples, record.mean_accuracy_after, evaluation->loss,
                  evaluation->accuracy, epsilon, elapsed);
    out << line << (record.applied ? "" : "  abandoned: " + record.abandon_reason) << std::endl;
  });

  std::atomic<bool> stop_agents{false};
  std::vector<std::thread> threads;
  for (auto& agent : agents) threads.emplace_back([&agent, &stop_agents] { agent->run(stop_agents); });
  std::atomic<bool> stop_server{false};
  const auto served = (*server)->run(stop_server);
  stop_agents = true;
  for (auto& thread : threads) thread.join();
  if (!served) return served.error();
  if (!observer_status) return observer_status.error();

  result.final_accuracy = result.rounds.empty() ? result.initial_accuracy : result.rounds.back().test_accuracy;
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return result;
}

}  // namespace shoal::simulations
