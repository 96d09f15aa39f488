// Federated rounds end to end, as an operator runs them: shoal-aggregator
// and shoal-agent as separate processes on 127.0.0.1, CurveZMQ, real files.
//
// Five enrolled agents with different amounts of data and one unenrolled
// agent. From round 2 on, one agent trains but holds its update, and is
// SIGKILLed there; the model that round applies must be the sample-weighted
// mean of the survivors' updates, computed here from the updates they kept. After round 3 the
// aggregator is SIGKILLed and restarted: it resumes from its checkpoint and
// finishes round 4 with the survivors.
#include <catch2/catch.hpp>

#include <httplib.h>


#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "child_process.h"
#include "e2e_files.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/enrolment.h"
#include "shoal/weights/weights_file.h"
#include "temp_dir.h"

using namespace shoal;
using shoal::testing::ChildProcess;
using shoal::testing::make_key;
using shoal::testing::write_text;
using shoal::testing::eventually;
using shoal::testing::TempDir;
using shoal::testing::word_after;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kTestImages = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
constexpr const char* kTestLabels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
constexpr std::size_t kAgents = 5;
constexpr std::uint64_t kHeldRound = 2;
// The plain test kills the aggregator once 3 rounds are applied. Rounds of
// logreg take well under a second, so more may finish before the kill lands:
// enough remain for the restarted aggregator to apply some.
constexpr std::uint64_t kPlainRounds = 8;

std::string text_of(const fs::path& path) {
  auto text = base::read_file(path, 1 << 24);
  return text ? *text : std::string();
}

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++count;
  return count;
}

std::string aggregator_toml(bool secure = false) {
  return std::string("[server]\nbind = \"tcp://127.0.0.1:*\"\nkey = \"server.key\"\nenrolment = \"enrolled.txt\"\n"
                     "initial_weights = \"initial.weights\"\nstate_dir = \"aggregator\"\n") +
         (secure ? "rounds = 2\n[secure]\nenabled = true\nphase_deadline_s = 3\n" : "rounds = " + std::to_string(kPlainRounds) + "\n[secure]\nenabled = false\n") +
         "[cohort]\nmin_devices = 3\ntrain_deadline_s = 10\ndevice_timeout_s = 5\n" +
         (secure ? "min_available = 5\n" : "min_available = 4\n") +  // secure: the held agent must be in round 1
         "[training]\nepochs = 1\nbatch_size = 50\nlearning_rate = 0.1\n"
         "[evaluation]\nevery = 0\n";
}

// Agent i trains on every (i+2)-th test image, so each holds a different number of samples.
std::string agent_toml(std::size_t i, const std::string& endpoint, bool enrolled, std::uint64_t held_round = kHeldRound) {
  const std::string name = enrolled ? "device-" + std::to_string(i) : "stranger";
  std::string text = "[agent]\nname = \"" + name + "\"\nkey = \"" + name + ".key\"\nstate_dir = \"" + name + "\"\n" +
                     "[aggregator]\nendpoint = \"" + endpoint + "\"\npublic_key = \"server.pub\"\n" +
                     "[model]\nname = \"logreg\"\ndevice = \"cpu\"\nthreads = 1\n" + "[data]\nimages = \"" +
                     kTestImages + "\"\nlabels = \"" + kTestLabels + "\"\nshard = 0\nshards = " + std::to_string(i + 2) +
                     "\n[debug]\nkeep_updates = true\n";
  if (i == kAgents - 1) text += "hold_updates_from_round = " + std::to_string(held_round) + "\n";
  // Agent 1 also serves apps its latest global model while it trains.
  if (i == 1) text += "[serve]\nport = 0\nmodel = \"latest-global\"\n";
  return text;
}

std::size_t samples_of_agent(std::size_t i) { return (10000 + i + 1) / (i + 2); }  // ceil(10000 / (i + 2))

// The metrics lines of applied rounds, as (round, version) pairs.
std::vector<std::pair<std::uint64_t, std::uint64_t>> applied_rounds(const fs::path& metrics) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> rounds;
  std::istringstream lines(text_of(metrics));
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded()) continue;  // a line being written
    if (record["event"] == "round" && record["applied"] == true) {
      rounds.emplace_back(record["round"].get<std::uint64_t>(), record["version"].get<std::uint64_t>());
    }
  }
  return rounds;
}

// The server key, kAgents enrolled device keys and the initial logreg model.
void prepare_fleet_files(const fs::path& dir) {
  make_key(dir / "server.key", crypto::KeyRole::server);
  for (std::size_t i = 0; i < kAgents; ++i) {
    const auto key = make_key(dir / ("device-" + std::to_string(i) + ".key"), crypto::KeyRole::device);
    REQUIRE(protocol::enroll_device(dir / "enrolled.txt", key.public_identity(), "device-" + std::to_string(i)));
  }
  ChildProcess init({SHOAL_AGENT, "init-model", "--model", "logreg", "--seed", "3", "--out", (dir / "initial.weights").string()},
                    dir / "init.log");
  REQUIRE(init.wait() == 0);
}

std::vector<std::size_t> survivors_of(const fs::path& dir, std::uint64_t round) {
  std::vector<std::size_t> survivors;
  for (std::size_t i = 0; i + 1 < kAgents; ++i) {
    if (fs::exists(dir / ("device-" + std::to_string(i)) / "updates" / ("round-" + std::to_string(round) + ".update"))) {
      survivors.push_back(i);
    }
  }
  return survivors;
}

// The largest relative difference between the model a round applied (as a
// survivor received it for the next round) and its base plus the
// sample-weighted mean of the survivors' kept updates.
double distance_from_survivors_mean(const fs::path& dir, std::uint64_t round, const std::vector<std::size_t>& survivors) {
  const auto round_name = "round-" + std::to_string(round) + ".update";
  const auto updates_of = [&](std::size_t i) { return dir / ("device-" + std::to_string(i)) / "updates"; };
  std::vector<double> sum;
  double total = 0;
  std::uint64_t base_version = 0;
  for (const auto i : survivors) {
    auto update = weights::read_weights_file(updates_of(i) / round_name);
    REQUIRE(update);
    base_version = update->version();  // the model version it was trained from
    sum.resize(update->values().size(), 0.0);
    const double samples = static_cast<double>(samples_of_agent(i));
    for (std::size_t k = 0; k < sum.size(); ++k) sum[k] += samples * update->values()[k];
    total += samples;
  }
  auto base = weights::read_weights_file(updates_of(survivors[0]) / ("base-v" + std::to_string(base_version) + ".weights"));
  REQUIRE(base);
  // The next version, as a survivor received it to train the following round.
  const auto next_name = "base-v" + std::to_string(base_version + 1) + ".weights";
  const auto with_next = std::find_if(survivors.begin(), survivors.end(),
                                      [&](std::size_t i) { return fs::exists(updates_of(i) / next_name); });
  REQUIRE(with_next != survivors.end());
  auto applied = weights::read_weights_file(updates_of(*with_next) / next_name);
  REQUIRE(applied);
  double worst = 0;
  for (std::size_t k = 0; k < sum.size(); ++k) {
    const double expected = base->values()[k] + sum[k] / total;
    worst = std::max(worst, std::abs(expected - applied->values()[k]) / std::max(1.0, std::abs(expected)));
  }
  return worst;
}

// The metrics line of round `round`; null if there is none.
nlohmann::json round_record(const fs::path& metrics, std::uint64_t round) {
  std::istringstream lines(text_of(metrics));
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    if (!record.is_discarded() && record["event"] == "round" && record["round"] == round) return record;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("aggregator and agents as processes: a killed agent, a killed aggregator, an unenrolled device") {
  TempDir dir;
  prepare_fleet_files(dir.path());
  make_key(dir / "stranger.key", crypto::KeyRole::device);
  write_text(dir / "aggregator.toml", aggregator_toml());

  auto aggregator = std::make_unique<ChildProcess>(
      std::vector<std::string>{SHOAL_AGGREGATOR, "run", "--config", (dir / "aggregator.toml").string()},
      dir / "aggregator-1.log");
  const std::string endpoint = aggregator_endpoint(*aggregator);
  REQUIRE_FALSE(endpoint.empty());

  std::vector<std::unique_ptr<ChildProcess>> agents;
  for (std::size_t i = 0; i <= kAgents; ++i) {
    const bool enrolled = i < kAgents;
    const auto config = dir / ("agent-" + std::to_string(i) + ".toml");
    write_text(config, agent_toml(i, endpoint, enrolled));
    agents.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{SHOAL_AGENT, "run", "--config", config.string()},
        dir / ("agent-" + std::to_string(i) + ".log")));
  }
  auto& held = *agents[kAgents - 1];
  auto& stranger = *agents[kAgents];
  INFO(held.log());
  INFO(aggregator->log());

  {
    // The holding agent trained its first round from round 2 on and sits on the update: kill it there.
    std::uint64_t killed_round = 0;
    REQUIRE(eventually([&] {
      const auto log = held.log();
      const auto holding = log.find(": trained; holding the update");
      if (holding == std::string::npos) return false;
      killed_round = std::stoull(log.substr(log.rfind("round ", holding) + 6));
      return true;
    }, 60s));
    held.kill(SIGKILL);

    // The stranger's handshake is refused, and it never takes part.
    REQUIRE(eventually([&] { return stranger.log().find("refused this device's key") != std::string::npos; }, 30s));
    CHECK(stranger.log().find("welcomed") == std::string::npos);

    // Round 3 applied: SIGKILL the aggregator right away, then restart it.
    const auto metrics = dir / "aggregator" / "metrics.jsonl";
    REQUIRE(eventually([&] { return applied_rounds(metrics).size() >= 3; }, 60s));
    aggregator->kill(SIGKILL);
    const auto before_restart = applied_rounds(metrics);
    aggregator = std::make_unique<ChildProcess>(
        std::vector<std::string>{SHOAL_AGGREGATOR, "run", "--config", (dir / "aggregator.toml").string(), "--bind", endpoint},
        dir / "aggregator-2.log");
    REQUIRE(aggregator->wait() == 0);  // it stops by itself at version kPlainRounds
    const auto restarted = aggregator->log();
    INFO(restarted);
    CHECK(restarted.find("resuming from checkpoint") != std::string::npos);
    CHECK(restarted.find("model version " + std::to_string(before_restart.back().second) + ", ") != std::string::npos);
    const auto after_restart = applied_rounds(metrics);
    REQUIRE(before_restart.size() < kPlainRounds);  // the kill came before the end
    REQUIRE(after_restart.size() == kPlainRounds);
    CHECK(after_restart.back().second == kPlainRounds);  // one version per round, none lost or applied twice
    CHECK(after_restart.back().first > before_restart.back().first);  // round numbers never repeat

    // The round the agent died in applied the sample-weighted mean of the survivors' updates.
    const auto survivors = survivors_of(dir.path(), killed_round);
    REQUIRE(survivors.size() >= 3);
    CHECK(distance_from_survivors_mean(dir.path(), killed_round, survivors) < 1e-6);
    const auto record = round_record(metrics, killed_round);
    REQUIRE_FALSE(record.is_null());
    CHECK(record["applied"] == true);
    CHECK(record["reported"] == survivors.size());
    CHECK(record["dropped"] == 1);
    CHECK(count_of(text_of(dir / "agent-0.log"), "welcomed by") >= 2);  // it reconnected after the restart

    // Agent 1 serves apps the last global model over HTTP while it runs.
    const auto port = word_after(agents[1]->log(), "serving apps at http://127.0.0.1:");
    REQUIRE_FALSE(port.empty());
    httplib::Client app("127.0.0.1", std::stoi(port));
    std::uint64_t served = 0;  // a version from rounds: the aggregator has stopped, but one may still be arriving
    CHECK(eventually([&] {
      auto metadata = app.Get("/v2/models/logreg");
      if (!metadata || metadata->status != 200) return false;
      served = std::stoull(nlohmann::json::parse(metadata->body)["versions"][0].get<std::string>());
      return served >= 1;
    }, 30s));
    CHECK(served <= kPlainRounds);
    const nlohmann::json request = {
        {"inputs", {{{"name", "input"}, {"shape", {1, 784}}, {"datatype", "UINT8"}, {"data", std::vector<int>(784, 40)}}}}};
    auto answer = app.Post("/v2/models/logreg/infer", request.dump(), "application/json");
    REQUIRE(answer);
    CHECK(answer->status == 200);
    CHECK(std::stoull(nlohmann::json::parse(answer->body)["model_version"].get<std::string>()) >= served);

    // SIGTERM stops an agent cleanly, even inside a wait on its socket.
    const int status = agents[0]->kill(SIGTERM);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}

TEST_CASE("secure aggregation with agents as processes: an agent killed after sharing its keys") {
  TempDir dir;
  prepare_fleet_files(dir.path());
  write_text(dir / "aggregator.toml", aggregator_toml(true));
  ChildProcess aggregator({SHOAL_AGGREGATOR, "run", "--config", (dir / "aggregator.toml").string()}, dir / "aggregator.log");
  const std::string endpoint = aggregator_endpoint(aggregator);
  REQUIRE_FALSE(endpoint.empty());
  std::vector<std::unique_ptr<ChildProcess>> agents;
  for (std::size_t i = 0; i < kAgents; ++i) {
    const auto config = dir / ("agent-" + std::to_string(i) + ".toml");
    write_text(config, agent_toml(i, endpoint, true, 1));
    agents.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{SHOAL_AGENT, "run", "--config", config.string()},
                                                    dir / ("agent-" + std::to_string(i) + ".log")));
  }
  auto& held = *agents[kAgents - 1];
  INFO(held.log());
  INFO(aggregator.log());
  // The last agent shares its keys in round 1, then sits on its masked input: kill it there.
  REQUIRE(eventually([&] { return held.log().find("keys shared; holding the masked input") != std::string::npos; }, 60s));
  held.kill(SIGKILL);
  REQUIRE(aggregator.wait() == 0);  // it stops by itself at version 2

  const auto metrics = dir / "aggregator" / "metrics.jsonl";
  const auto record = round_record(metrics, 1);
  REQUIRE_FALSE(record.is_null());
  CHECK(record["applied"] == true);
  CHECK(record["secure"] == true);
  CHECK(record["reported"] == kAgents - 1);
  const auto survivors = survivors_of(dir.path(), 1);
  REQUIRE(survivors.size() == kAgents - 1);
  // The survivors' weighted mean, up to quantisation (32-bit fixed point, stochastic rounding).
  CHECK(distance_from_survivors_mean(dir.path(), 1, survivors) < 1e-5);
  std::uint64_t samples = 0;  // the server learns only their total, from the secure sum's weight
  for (const auto i : survivors) samples += samples_of_agent(i);
  CHECK(record["samples"] == samples);
  CHECK(aggregator.log().find("round 1: applied 4 of 5") != std::string::npos);
}
