// round_overhead_bench: what a federated round costs beyond its bytes.
//
// shoal: shoal-aggregator and N shoal-agent processes (default 50) on
// 127.0.0.1 over CurveZMQ. The agents run with debug.zero_update, so each
// answers its train task at once with an all-zero update: a round is the
// model going down to every agent, each agent decoding it and keeping it on
// disk, and the update coming back in parts to be folded and applied. The
// figure is the round time from the aggregator's metrics log (tasks out to
// the last update folded), and the same plus the apply and checkpoint.
// The agents keep their models in --agent-state (default: under /dev/shm):
// each device of a real fleet writes to its own disk, while here fifty
// would queue on one disk's fsyncs.
//
// Baseline, in the same run: raw ZeroMQ, a ROUTER and N DEALERs in this
// process, moving the same bytes per round (the encoded model down to each
// DEALER, an update-sized reply back), with CurveZMQ and over plain TCP.
//
// Usage: round_overhead_bench [--agents 50] [--rounds 5] [--model mlp] [--agent-state DIR]
#include <CLI/CLI.hpp>

#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "child_process.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/enrolment.h"
#include "shoal/weights/weights_file.h"
#include "bench_files.h"

using namespace shoal;
using shoal::testing::ChildProcess;
using shoal::testing::eventually;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void die(const std::string& why) { bench::fail("round_overhead_bench", why); }
void write_text(const fs::path& path, const std::string& text) { bench::write_text("round_overhead_bench", path, text); }

crypto::IdentityKeyPair make_key(const fs::path& path, crypto::KeyRole role) {
  auto keys = crypto::IdentityKeyPair::generate();
  if (!crypto::save_identity_key(path, {role, keys}) ||
      !crypto::save_public_key(fs::path(path).replace_extension(".pub"), {role, keys.public_identity()})) {
    die("cannot write the key " + path.string());
  }
  return keys;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

struct ShoalRounds {
  std::vector<double> round_seconds;  // tasks out to the last update folded
  std::vector<double> cycle_seconds;  // the same, plus the apply and the checkpoint
  std::uint64_t bytes_per_round = 0;  // in and out, as the aggregator counted them
};

ShoalRounds read_rounds(const fs::path& metrics) {
  ShoalRounds rounds;
  auto text = base::read_file(metrics, 1 << 24);
  if (!text) die("no metrics log at " + metrics.string());
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || record["event"] != "round") continue;
    if (record["applied"] != true) die("a round was abandoned: " + line);
    const auto& seconds = record["seconds"];
    rounds.round_seconds.push_back(seconds["round"].get<double>());
    rounds.cycle_seconds.push_back(seconds["round"].get<double>() + seconds["apply"].get<double>() +
                                   seconds["checkpoint"].get<double>());
    rounds.bytes_per_round = record["bytes_in"].get<std::uint64_t>() + record["bytes_out"].get<std::uint64_t>();
  }
  return rounds;
}

// Runs the aggregator and `agents` zero-update agents for `rounds` rounds in `dir`.
ShoalRounds run_shoal(const fs::path& dir, const fs::path& agent_state, std::size_t agents, std::uint64_t rounds,
                      const std::string& model) {
  make_key(dir / "server.key", crypto::KeyRole::server);
  for (std::size_t i = 0; i < agents; ++i) {
    const auto name = "device-" + std::to_string(i);
    const auto key = make_key(dir / (name + ".key"), crypto::KeyRole::device);
    if (!protocol::enroll_device(dir / "enrolled.txt", key.public_identity(), name)) die("cannot enrol " + name);
  }
  ChildProcess init({SHOAL_AGENT, "init-model", "--model", model, "--out", (dir / "initial.weights").string()},
                    dir / "init.log");
  if (init.wait() != 0) die("shoal-agent init-model failed: " + init.log());
  // One sample: an agent must hold data, though with zero_update it never trains on it.
  std::string sample(784 * 2, '0');
  for (std::size_t i = 1; i < sample.size(); i += 2) sample[i] = ',';
  write_text(dir / "sample.csv", sample + "0\n");
  const auto n = std::to_string(agents);
  write_text(dir / "aggregator.toml",
             "[server]\nbind = \"tcp://127.0.0.1:*\"\nkey = \"server.key\"\nenrolment = \"enrolled.txt\"\n"
             "initial_weights = \"initial.weights\"\nstate_dir = \"aggregator\"\nrounds = " +
                 std::to_string(rounds) + "\n[cohort]\nmin_devices = " + n + "\nmax_devices = " + n +
                 "\nmin_available = " + n + "\nfraction = 1.0\ntrain_deadline_s = 120\n[evaluation]\nevery = 0\n"
                 "[secure]\nenabled = false\n");  // the plain round's overhead; secure_aggregation_bench covers the rest

  ChildProcess aggregator({SHOAL_AGGREGATOR, "run", "--config", (dir / "aggregator.toml").string()},
                          dir / "aggregator.log");
  const std::string endpoint = testing::aggregator_endpoint(aggregator);
  if (endpoint.empty()) die("the aggregator did not start: " + aggregator.log());
  std::vector<std::unique_ptr<ChildProcess>> fleet;
  for (std::size_t i = 0; i < agents; ++i) {
    const auto name = "device-" + std::to_string(i);
    const auto config = dir / (name + ".toml");
    write_text(config, "[agent]\nname = \"" + name + "\"\nkey = \"" + name + ".key\"\nstate_dir = \"" +
                           (agent_state / name).string() + "\"\n[aggregator]\nendpoint = \"" + endpoint +
                           "\"\npublic_key = \"server.pub\"\n[model]\nname = \"" + model +
                           "\"\ndevice = \"cpu\"\nthreads = 1\n[data]\ncsv = \"sample.csv\"\n"
                           "[debug]\nzero_update = true\n");
    fleet.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{SHOAL_AGENT, "run", "--config", config.string()},
                                                   dir / (name + ".log")));
  }
  // The aggregator stops by itself once the last round is applied.
  const auto metrics = dir / "aggregator" / "metrics.jsonl";
  if (!eventually([&] { return fs::exists(metrics) && read_rounds(metrics).round_seconds.size() >= rounds; }, 600s)) {
    die("the rounds did not finish: " + aggregator.log());
  }
  if (aggregator.wait() != 0) die("the aggregator failed: " + aggregator.log());
  for (auto& agent : fleet) agent->kill(SIGTERM);
  return read_rounds(metrics);
}

// Raw ZeroMQ: per round, `down` bytes from a ROUTER to each of `agents`
// DEALERs and `up` bytes back from each; the seconds of each round.
std::vector<double> run_raw(std::size_t agents, std::uint64_t rounds, std::size_t down, std::size_t up, bool curve) {
  zmq::context_t context;
  char server_public[41], server_secret[41];
  if (zmq_curve_keypair(server_public, server_secret) != 0) die("zmq_curve_keypair failed");
  zmq::socket_t router(context, zmq::socket_type::router);
  if (curve) {
    router.set(zmq::sockopt::curve_server, true);
    router.set(zmq::sockopt::curve_secretkey, server_secret);
  }
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);

  std::vector<zmq::socket_t> dealers;
  for (std::size_t i = 0; i < agents; ++i) {
    zmq::socket_t dealer(context, zmq::socket_type::dealer);
    if (curve) {
      char client_public[41], client_secret[41];
      if (zmq_curve_keypair(client_public, client_secret) != 0) die("zmq_curve_keypair failed");
      dealer.set(zmq::sockopt::curve_serverkey, server_public);
      dealer.set(zmq::sockopt::curve_publickey, client_public);
      dealer.set(zmq::sockopt::curve_secretkey, client_secret);
    }
    dealer.connect(endpoint);
    dealers.push_back(std::move(dealer));
  }
  // The devices' side: answer every message with an update-sized one.
  std::atomic<bool> stop{false};
  std::thread devices([&] {
    for (auto& dealer : dealers) (void)dealer.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    std::vector<zmq::pollitem_t> items;
    for (auto& dealer : dealers) items.push_back({dealer.handle(), 0, ZMQ_POLLIN, 0});
    while (!stop.load()) {
      zmq::poll(items, 100ms);
      for (std::size_t i = 0; i < items.size(); ++i) {
        zmq::message_t model;
        if (!(items[i].revents & ZMQ_POLLIN) || !dealers[i].recv(model, zmq::recv_flags::dontwait)) continue;
        (void)dealers[i].send(zmq::message_t(up), zmq::send_flags::none);
      }
    }
  });

  std::vector<zmq::message_t> ids;
  for (std::size_t i = 0; i < agents; ++i) {
    zmq::message_t id, hello;
    (void)router.recv(id);
    (void)router.recv(hello);
    ids.push_back(std::move(id));
  }
  // One model buffer shared by every frame, zero copy, as the aggregator sends it.
  const std::vector<std::uint8_t> model(down, 1);
  std::vector<double> seconds;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const auto start = Clock::now();
    for (const auto& id : ids) {
      (void)router.send(zmq::buffer(id.data(), id.size()), zmq::send_flags::sndmore);
      (void)router.send(zmq::message_t(const_cast<std::uint8_t*>(model.data()), model.size(), nullptr, nullptr),
                        zmq::send_flags::none);
    }
    for (std::size_t replies = 0; replies < agents; ++replies) {
      zmq::message_t id, update;
      (void)router.recv(id);
      (void)router.recv(update);
    }
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  stop = true;
  devices.join();
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t agents = 50;
  std::uint64_t rounds = 5;
  std::string model = "mlp";
  fs::path work_dir;
  fs::path agent_state;
  CLI::App app{"round overhead: shoal-aggregator and zero-update shoal-agent processes vs raw ZeroMQ"};
  app.add_option("--agents", agents, "agent processes")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--rounds", rounds, "rounds to time")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--model", model, "zoo model: logreg, mlp or cnn")->capture_default_str();
  app.add_option("--work-dir", work_dir, "where keys, configs and logs go (default: a fresh directory in /tmp)");
  app.add_option("--agent-state", agent_state,
                 "where the agents keep their models (default: under /dev/shm if it exists, else the work dir)");
  CLI11_PARSE(app, argc, argv);
  const bool keep_work_dir = !work_dir.empty();
  const auto run_name = "shoal-round-overhead-" + std::to_string(getpid());
  if (!keep_work_dir) work_dir = fs::temp_directory_path() / run_name;
  if (agent_state.empty()) agent_state = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") / run_name : work_dir;
  fs::create_directories(work_dir);
  fs::create_directories(agent_state);
  agent_state = fs::absolute(agent_state);

  const auto shoal = run_shoal(work_dir, agent_state, agents, rounds, model);
  auto initial = weights::read_weights_file(work_dir / "initial.weights");
  if (!initial) die(initial.error().message);
  const std::size_t down = weights::encode_weights(*initial).size();
  const std::size_t up = initial->values().size() * sizeof(float);
  const auto raw_curve = run_raw(agents, rounds, down, up, true);
  const auto raw_plain = run_raw(agents, rounds, down, up, false);
  if (!keep_work_dir) fs::remove_all(work_dir);
  if (agent_state.filename() == run_name) fs::remove_all(agent_state);

  const double shoal_round = median(shoal.round_seconds);
  std::printf("round of %zu agents as processes, %s model: %zu bytes down and %zu bytes up per agent, "
              "median of %llu rounds\n",
              agents, model.c_str(), down, up, static_cast<unsigned long long>(rounds));
  std::printf("%-44s %10s %16s\n", "", "seconds", "x raw CurveZMQ");
  const double raw = median(raw_curve);
  std::printf("%-44s %10.4f %16.2f\n", "raw ZeroMQ, plain TCP", median(raw_plain), median(raw_plain) / raw);
  std::printf("%-44s %10.4f %16.2f\n", "raw ZeroMQ, CurveZMQ", raw, 1.0);
  std::printf("%-44s %10.4f %16.2f\n", "shoal round (tasks out to last update in)", shoal_round, shoal_round / raw);
  std::printf("%-44s %10.4f %16.2f\n", "shoal round + apply + checkpoint", median(shoal.cycle_seconds),
              median(shoal.cycle_seconds) / raw);
  std::printf("agents kept their models in %s\n", agent_state.c_str());
  std::printf("shoal moved %llu bytes per round (raw: %zu)\n", static_cast<unsigned long long>(shoal.bytes_per_round),
              agents * (down + up));
  return 0;
}
