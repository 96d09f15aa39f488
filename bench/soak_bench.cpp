// soak_bench: a long run with faults, to show that the aggregator's memory
// stays flat and that no model version is lost or applied twice.
//
// shoal-aggregator runs as a process on 127.0.0.1; --devices agents (default
// 1,000), each with its own key, ZeroMQ context and CurveZMQ connection, run
// on threads of this process and train logreg on their own synthetic data.
// Secure aggregation (SecAgg+) is on. During --rounds rounds (default 200):
//   - each agent is killed with chance --agent-kill-rate per second (its
//     socket closed mid-whatever, no goodbye) and a fresh agent with the same
//     key starts in its place, as a device restarting;
//   - the aggregator is SIGKILLed --aggregator-kills times (default 3: at a
//     quarter, half and three quarters of the rounds) and restarted on the
//     same port; it resumes from its checkpoint.
// Figures: the aggregator's RSS (VmRSS) after warm-up (--warmup rounds into
// each process's life) and at that process's end, and their ratio; the applied
// versions from the metrics log, which must go 1, 2, ... with none twice, and
// the version each restart resumed from, which must be the last one applied.
//
// Usage: soak_bench [--devices 1000] [--rounds 200] [--warmup 20] [--agent-kill-rate 0.002]
//                   [--aggregator-kills 3] [--smoke]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "child_process.h"
#include "shoal/base/durable_file.h"
#include "shoal/client/agent.h"
#include "shoal/crypto/key_file.h"
#include "shoal/inference/device.h"
#include "shoal/inference/model.h"
#include "shoal/weights/weights_file.h"
#include "bench_files.h"
#include "temp_dir.h"

using namespace shoal;
using shoal::testing::ChildProcess;
using shoal::testing::eventually;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void fail(const std::string& why) { bench::fail("soak_bench", why); }
void write_text(const fs::path& path, const std::string& text) { bench::write_text("soak_bench", path, text); }

// The aggregator's resident memory, from /proc; 0 once it is gone.
std::uint64_t rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

struct MetricsRound {
  std::uint64_t version;
  bool applied;
};

// The round lines of the metrics log, read as it grows: each poll reads
// only what was appended, up to its last whole line (a line a kill cut
// short is skipped once the next one follows it).
class MetricsTail {
 public:
  explicit MetricsTail(fs::path path) : path_(std::move(path)) {}
  const std::vector<MetricsRound>& poll() {
    std::ifstream in(path_, std::ios::binary);
    if (!in || !in.seekg(static_cast<std::streamoff>(offset_))) return rounds_;
    const std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto end = chunk.rfind('\n');
    if (end == std::string::npos) return rounds_;
    offset_ += end + 1;
    std::istringstream lines(chunk.substr(0, end + 1));
    for (std::string line; std::getline(lines, line);) {
      const auto record = nlohmann::json::parse(line, nullptr, false);
      if (record.is_discarded() || record.value("event", "") != "round") continue;
      rounds_.push_back({record["version"].get<std::uint64_t>(), record["applied"].get<bool>()});
    }
    return rounds_;
  }

 private:
  fs::path path_;
  std::uint64_t offset_ = 0;
  std::vector<MetricsRound> rounds_;
};

std::uint64_t last_applied(const std::vector<MetricsRound>& rounds) {
  std::uint64_t version = 0;
  for (const auto& round : rounds) {
    if (round.applied) version = std::max(version, round.version);
  }
  return version;
}

// One device: its agent, restarted in place when killed.
struct Device {
  std::unique_ptr<client::Agent> agent;
  std::unique_ptr<std::atomic<bool>> stop;
  std::thread thread;

  void kill() {
    if (!thread.joinable()) return;
    *stop = true;
    thread.join();
    agent.reset();  // closes its socket: to the server the device just vanished
  }
};

struct Fleet {
  std::vector<crypto::IdentityKeyPair> keys;
  client::AgentOptions options;
  std::vector<Device> devices;
  client::LogSink log = [](const std::string&) {};

  void start(std::size_t i) {
    auto model = inference::Model::from_zoo("logreg", 0);
    if (!model) fail(model.error().describe());
    client::SyntheticSpec spec;
    spec.samples = 64;
    spec.seed = i;
    auto options_i = options;
    options_i.name = "device-" + std::to_string(i);
    auto agent = client::Agent::create(options_i, keys[i], std::move(model).value(), client::make_synthetic(spec), {},
                                       log);
    if (!agent) fail(agent.error().describe());
    auto& device = devices[i];
    device.agent = std::move(agent).value();
    device.stop = std::make_unique<std::atomic<bool>>(false);
    device.thread = std::thread([agent = device.agent.get(), stop = device.stop.get()] { agent->run(*stop); });
  }
};

// One life of the aggregator process: its RSS at warm-up and at its end.
struct Life {
  std::uint64_t resumed_from = 0;  // the version its log says it resumed from
  std::uint64_t first_version = 0, last_version = 0;
  std::uint64_t warm_rss = 0, end_rss = 0, peak_rss = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"soak_bench: aggregator memory and model versions over a long run with agent and aggregator kills"};
  std::size_t devices = 1000;
  std::uint64_t rounds = 200;
  std::uint64_t warmup = 20;
  double agent_kill_rate = 0.002;
  std::size_t aggregator_kills = 3;
  bool smoke = false;
  app.add_option("--devices", devices, "agents, each on its own thread and connection")->check(CLI::Range(10, 1000));
  app.add_option("--rounds", rounds, "rounds to apply")->check(CLI::Range(8, 100000));
  app.add_option("--warmup", warmup, "rounds into each aggregator life before its RSS is taken as the baseline");
  app.add_option("--agent-kill-rate", agent_kill_rate, "chance per agent per second of a kill and restart")
      ->check(CLI::Range(0.0, 0.1));
  app.add_option("--aggregator-kills", aggregator_kills, "SIGKILLs of the aggregator, spread evenly over the rounds")
      ->check(CLI::Range(0, 10));
  app.add_flag("--smoke", smoke, "20 devices, 16 rounds: checks that the bench runs");
  CLI11_PARSE(app, argc, argv);
  if (smoke) {
    devices = 20;
    rounds = 16;
    warmup = 2;
    agent_kill_rate = 0.02;
  }
  const std::size_t cohort = std::max<std::size_t>(10, devices / 10);
  // How long a round waits for a killed member: shorter in the smoke run, which has few rounds to lose.
  const std::string train_deadline_s = smoke ? "10" : "30", phase_deadline_s = smoke ? "5" : "10";

  shoal::testing::TempDir dir;
  const auto server_key = crypto::IdentityKeyPair::generate();
  if (!crypto::save_identity_key(dir / "server.key", {crypto::KeyRole::server, server_key})) fail("cannot write the server key");
  Fleet fleet;
  std::string enrolment;
  client::TrustedPeers peers;
  for (std::size_t i = 0; i < devices; ++i) {
    fleet.keys.push_back(crypto::IdentityKeyPair::generate());
    enrolment += crypto::format_ed25519_public(fleet.keys.back().public_identity().ed25519()) + " device-" +
                 std::to_string(i) + "\n";
    peers.insert(fleet.keys.back().public_identity().ed25519());
  }
  write_text(dir / "enrolled.txt", enrolment);
  auto model = inference::Model::from_zoo("logreg", 0);
  if (!model) fail(model.error().describe());
  if (!weights::write_weights_file(dir / "initial.weights", model->get_weights(0))) fail("cannot write the model");
  if (!inference::set_cpu_threads(1)) fail("cannot set libtorch's threads");

  // The config of every life; the first binds any free port, later ones that port again.
  auto write_config = [&](const std::string& bind) {
    write_text(dir / "aggregator.toml",
               "[server]\nbind = \"" + bind + "\"\nkey = \"server.key\"\nenrolment = \"enrolled.txt\"\n"
               "initial_weights = \"initial.weights\"\nstate_dir = \"state\"\nrounds = " + std::to_string(rounds) +
               "\n[cohort]\nmin_devices = " + std::to_string(cohort / 2) + "\nmax_devices = " +
               std::to_string(cohort) + "\nmin_available = " + std::to_string(cohort) +
               "\nfraction = 1.0\ntrain_deadline_s = " + train_deadline_s +
               "\ndevice_timeout_s = 10\n[evaluation]\nevery = 0\n[secure]\nenabled = true\nphase_deadline_s = " +
               phase_deadline_s + "\n");
  };
  write_config("tcp://127.0.0.1:*");
  MetricsTail metrics(dir / "state" / "metrics.jsonl");
  std::vector<Life> lives;
  auto start_aggregator = [&](std::size_t life) {
    auto process = std::make_unique<ChildProcess>(
        std::vector<std::string>{SHOAL_AGGREGATOR, "run", "--config", (dir / "aggregator.toml").string()},
        dir / ("aggregator-" + std::to_string(life) + ".log"));
    const auto endpoint = testing::aggregator_endpoint(*process);
    if (endpoint.empty()) fail("the aggregator did not start: " + process->log());
    Life started;
    const auto resumed = testing::word_after(process->log(), "model version ");
    started.resumed_from = resumed.empty() ? 0 : std::stoull(resumed);
    started.first_version = last_applied(metrics.poll());
    lives.push_back(started);
    return std::make_pair(std::move(process), endpoint);
  };
  auto [aggregator, endpoint] = start_aggregator(0);
  write_config(endpoint);  // restarts bind the same port, where the agents reconnect

  fleet.options.endpoint = endpoint;
  fleet.options.server = server_key.public_identity();
  fleet.options.trusted_peers = peers;
  fleet.options.max_hello_backoff = 1000ms;
  fleet.devices.resize(devices);
  const auto started = Clock::now();
  for (std::size_t i = 0; i < devices; ++i) fleet.start(i);
  std::printf("soak: %zu agents over CurveZMQ, cohort %zu, %llu rounds, secure aggregation, logreg\n", devices, cohort,
              static_cast<unsigned long long>(rounds));

  std::vector<std::uint64_t> kill_at;
  for (std::size_t k = 1; k <= aggregator_kills; ++k) kill_at.push_back(k * rounds / (aggregator_kills + 1));
  std::size_t kills_done = 0;
  std::size_t agent_kills = 0;
  std::mt19937_64 rng(1);
  std::uint64_t seen = 0;
  auto last_progress = Clock::now();
  constexpr auto kPoll = 20ms;
  while (seen < rounds) {
    std::this_thread::sleep_for(kPoll);  // a bench driving another process: it polls that process's files
    const auto applied = last_applied(metrics.poll());
    auto& life = lives.back();
    const auto rss = rss_bytes(aggregator->pid());
    life.peak_rss = std::max(life.peak_rss, rss);
    if (applied > seen && rss > 0) {  // rss 0: the process has just exited
      const std::uint64_t every = std::max<std::uint64_t>(1, rounds / 20);
      if (applied / every > seen / every) {
        std::printf("version %llu: aggregator RSS %.1f MB; %zu agent kills, %zu aggregator kills so far\n",
                    static_cast<unsigned long long>(applied), static_cast<double>(rss) / 1e6, agent_kills, kills_done);
        std::fflush(stdout);
      }
      seen = applied;
      last_progress = Clock::now();
      life.last_version = applied;
      if (applied < rounds) life.end_rss = rss;  // at the last version the process is already freeing everything
      if (life.warm_rss == 0 && applied >= life.first_version + warmup) life.warm_rss = rss;
    }
    if (applied >= rounds) seen = applied;
    if (Clock::now() - last_progress > 120s) fail("no round applied for 120 s; log: " + aggregator->log());
    if (kills_done < kill_at.size() && seen >= kill_at[kills_done] && seen < rounds) {
      aggregator->kill(SIGKILL);
      ++kills_done;
      auto restarted = start_aggregator(kills_done);
      aggregator = std::move(restarted.first);
      continue;
    }
    std::bernoulli_distribution killed(agent_kill_rate * std::chrono::duration<double>(kPoll).count());
    for (std::size_t i = 0; i < devices; ++i) {
      if (!killed(rng)) continue;
      fleet.devices[i].kill();
      fleet.start(i);
      ++agent_kills;
    }
  }
  if (aggregator->wait() != 0) fail("the aggregator failed: " + aggregator->log());
  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  for (auto& device : fleet.devices) *device.stop = true;  // all at once, then each is joined
  for (auto& device : fleet.devices) device.kill();

  // Versions: applied in order, none twice, none lost across a kill.
  const auto& all = metrics.poll();
  std::vector<std::uint64_t> versions;
  for (const auto& round : all) {
    if (round.applied) versions.push_back(round.version);
  }
  std::size_t doubled = 0, gaps = 0;
  for (std::size_t k = 1; k < versions.size(); ++k) {
    if (versions[k] <= versions[k - 1]) ++doubled;
    if (versions[k] > versions[k - 1] + 1) gaps += versions[k] - versions[k - 1] - 1;
  }
  std::size_t bad_resumes = 0;
  for (std::size_t k = 1; k < lives.size(); ++k) {
    // A kill between the checkpoint's commit and its metrics line resumes one version later.
    const bool resumed_last = lives[k].resumed_from == lives[k].first_version ||
                              lives[k].resumed_from == lives[k].first_version + 1;
    if (!resumed_last) ++bad_resumes;
    std::printf("aggregator restart %zu: resumed from version %llu, the last applied before the kill was %llu\n", k,
                static_cast<unsigned long long>(lives[k].resumed_from),
                static_cast<unsigned long long>(lives[k].first_version));
  }
  double worst_growth = 0;
  for (std::size_t k = 0; k < lives.size(); ++k) {
    const auto& life = lives[k];
    if (life.warm_rss == 0) continue;
    const double growth = static_cast<double>(life.end_rss) / static_cast<double>(life.warm_rss) - 1;
    worst_growth = std::max(worst_growth, growth);
    std::printf("aggregator life %zu: versions %llu to %llu, RSS %.1f MB after warm-up, %.1f MB at its end (%+.1f%%), "
                "peak %.1f MB\n",
                k, static_cast<unsigned long long>(life.first_version), static_cast<unsigned long long>(life.last_version),
                static_cast<double>(life.warm_rss) / 1e6, static_cast<double>(life.end_rss) / 1e6, 100 * growth,
                static_cast<double>(life.peak_rss) / 1e6);
  }
  std::size_t abandoned = 0;
  for (const auto& round : all) abandoned += !round.applied;
  std::printf("%llu versions applied in %.0f s (%zu rounds abandoned), %zu agent kills, %zu aggregator SIGKILLs\n",
              static_cast<unsigned long long>(versions.empty() ? 0 : versions.back()), wall, abandoned, agent_kills,
              kills_done);
  std::printf("versions applied twice: %zu; versions without a metrics line (a kill between checkpoint and log): %zu; "
              "restarts that did not resume the last version: %zu\n",
              doubled, gaps, bad_resumes);
  std::printf("worst RSS growth after warm-up: %+.1f%% (target under +10%%)\n", 100 * worst_growth);
  if (versions.empty() || versions.back() != rounds) fail("the run did not reach version " + std::to_string(rounds));
  if (doubled > 0 || bad_resumes > 0) fail("a model version was lost or applied twice");
  if (!smoke && worst_growth >= 0.10) fail("the aggregator's RSS grew by 10% or more after warm-up");
  return 0;
}
