#include "tcp_fleet.h"

#include <sys/resource.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "shoal/aggregator/aggregator_server.h"
#include "shoal/base/durable_file.h"
#include "shoal/client/agent.h"
#include "shoal/crypto/key_file.h"
#include "shoal/inference/device.h"

namespace shoal::simulations {
namespace {

// An agent holds a ZeroMQ context (its I/O threads and their descriptors),
// a socket and a monitor; the server holds a connection per agent.
constexpr std::size_t kDescriptorsPerAgent = 12;
constexpr std::size_t kMaxTcpDevices = 1000;

// Where a device drops out of a round: phase by phase, with that phase's
// chance (a plain round has only training). Drop points follow DropPhase.
std::function<client::DropPoint(std::uint64_t)> dropout_plan(const SimulationConfig& config, std::size_t device) {
  auto generator = std::make_shared<std::mt19937_64>(config.seed * 1'000'003 + device);
  const std::size_t phases = config.round.secure.enabled ? kDropPhases : 1;
  return [generator, phases, chances = config.dropout_by_phase()](std::uint64_t) {
    for (std::size_t phase = 0; phase < phases; ++phase) {
      if (std::uniform_real_distribution<double>(0, 1)(*generator) < chances[phase]) {
        return static_cast<client::DropPoint>(1 + phase);
      }
    }
    return client::DropPoint::none;
  };
}

}  // namespace

Status check_tcp_fleet_size(std::size_t devices) {
  rlimit files{};
  std::size_t limit = kMaxTcpDevices;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    limit = std::min(limit, static_cast<std::size_t>(files.rlim_cur > 64 ? (files.rlim_cur - 64) / kDescriptorsPerAgent : 0));
  }
  if (devices <= limit) return ok_status();
  return make_error(ErrorCode::invalid_argument,
                    "simulation config: fleet.devices is " + std::to_string(devices) +
                        ", but fleet.transport = \"tcp\" runs a thread and sockets per device and takes at most " +
                        std::to_string(limit) + " here (the open-file limit is " +
                        std::to_string(static_cast<unsigned long long>(files.rlim_cur)) +
                        "); use fleet.transport = \"engine\" for large fleets");
}

Status run_tcp_fleet(const SimulationConfig& config, aggregator::AggregatorConfig server, const client::Dataset& train,
                     const Partition& partition, const std::filesystem::path& work_dir, std::ostream& server_log,
                     const TcpRoundObserver& on_round) {
  if (auto status = check_tcp_fleet_size(partition.size()); !status) return status;
  // The keys and files a real deployment has: a server key, an enrolment list naming every device.
  const auto server_key = crypto::IdentityKeyPair::generate();
  if (auto status = crypto::save_identity_key(work_dir / "server.key", {crypto::KeyRole::server, server_key}); !status) {
    return status;
  }
  std::vector<crypto::IdentityKeyPair> device_keys;
  std::string enrolment = "# the simulated fleet\n";
  for (std::size_t i = 0; i < partition.size(); ++i) {
    device_keys.push_back(crypto::IdentityKeyPair::generate());
    enrolment += crypto::format_ed25519_public(device_keys.back().public_identity().ed25519()) + " device-" +
                 std::to_string(i) + "\n";
  }
  if (auto status = base::write_file_durably(work_dir / "enrolled.txt", enrolment); !status) return status;
  server.bind = "tcp://127.0.0.1:*";
  server.server_key = work_dir / "server.key";
  server.enrolment = work_dir / "enrolled.txt";
  // Agents train at once on their own threads; one libtorch thread each keeps them from fighting over the cores.
  if (auto status = inference::set_cpu_threads(config.threads == 0 ? 1 : config.threads); !status) return status;

  auto aggregator = aggregator::AggregatorServer::open(server, server_log);
  if (!aggregator) return aggregator.error();
  Status observer_status = ok_status();
  std::atomic<bool> stop_server{false};
  (*aggregator)->set_observer([&](const aggregator::RoundRecord& record, const aggregator::RoundCosts& costs,
                                  const weights::Weights& global) {
    if (!observer_status) return;
    observer_status = on_round(record, costs, global);
    if (!observer_status) stop_server = true;
  });

  std::ofstream agent_log_file(work_dir / "agents.log");
  std::mutex agent_log_mutex;
  client::LogSink agent_log = [&](const std::string& line) {
    std::lock_guard lock(agent_log_mutex);
    agent_log_file << line << '\n';
  };
  // Every device knows its peers' identity keys, as an enrolment list handed out to the fleet would tell it.
  client::TrustedPeers peers;
  for (const auto& key : device_keys) peers.insert(key.public_identity().ed25519());
  std::vector<std::unique_ptr<client::Agent>> agents;
  for (std::size_t i = 0; i < partition.size(); ++i) {
    auto model = inference::Model::open(config.model, config.model_seed);
    if (!model) return model.error();
    client::AgentOptions options;
    options.name = "device-" + std::to_string(i);
    options.endpoint = (*aggregator)->endpoint();
    options.server = server_key.public_identity();
    options.trusted_peers = peers;
    client::AgentFaults faults;
    faults.session.drop_out = dropout_plan(config, i);
    auto agent = client::Agent::create(options, device_keys[i], std::move(model).value(), train.subset(partition[i]),
                                       client::Dataset{}, agent_log, faults);
    if (!agent) return agent.error();
    agents.push_back(std::move(agent).value());
  }
  std::atomic<bool> stop_agents{false};
  std::vector<std::thread> threads;
  for (auto& agent : agents) threads.emplace_back([&agent, &stop_agents] { agent->run(stop_agents); });
  const auto served = (*aggregator)->run(stop_server);
  stop_agents = true;
  for (auto& thread : threads) thread.join();
  if (!served) return served;
  return observer_status;
}

}  // namespace shoal::simulations
