// Releases over the aggregator's socket, as processes: shoal-aggregator
// serves a release repository, and shoal-agent, configured with
// repository = "aggregator", installs from it with `update` and on its own
// schedule in `run`, over CurveZMQ with its device key.
#include <catch2/catch.hpp>

#include "child_process.h"
#include "e2e_files.h"
#include "e2e_releases.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/enrolment.h"
#include "temp_dir.h"

#include <nlohmann/json.hpp>

using namespace shoal;
using shoal::testing::ChildProcess;
using shoal::testing::LogregReleases;
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

}  // namespace

TEST_CASE("an agent installs releases the aggregator serves, by command and on its schedule") {
  TempDir dir;
  make_key(dir / "server.key", crypto::KeyRole::server);
  const auto device = make_key(dir / "device.key", crypto::KeyRole::device);
  REQUIRE(protocol::enroll_device(dir / "enrolled.txt", device.public_identity(), "device"));
  // The operator's repository, with version 1 published; one key signs every role.
  LogregReleases releases(dir.path());
  releases.publish(1);

  write_text(dir / "aggregator.toml",
             "[server]\nbind = \"tcp://127.0.0.1:*\"\nkey = \"server.key\"\nenrolment = \"enrolled.txt\"\n"
             "initial_weights = \"initial.weights\"\nstate_dir = \"aggregator\"\n"
             "[cohort]\nmin_devices = 2\n[release]\nrepository = \"releases\"\n");
  ChildProcess aggregator({SHOAL_AGGREGATOR, "run", "--config", (dir / "aggregator.toml").string()},
                          dir / "aggregator.log");
  const std::string endpoint = aggregator_endpoint(aggregator);
  REQUIRE_FALSE(endpoint.empty());
  INFO(aggregator.log());

  write_text(dir / "agent.toml",
             "[agent]\nname = \"device\"\nkey = \"device.key\"\nstate_dir = \"device\"\n"
             "[aggregator]\nendpoint = \"" + endpoint + "\"\npublic_key = \"server.pub\"\n"
             "[model]\nname = \"logreg\"\ndevice = \"cpu\"\nthreads = 1\n"
             "[data]\nimages = \"" + std::string(kTestImages) + "\"\nlabels = \"" + kTestLabels + "\"\n"
             "[data.held_out]\nimages = \"" + std::string(kTestImages) + "\"\nlabels = \"" + kTestLabels + "\"\n"
             "[release]\nrepository = \"aggregator\"\ntrusted_root = \"releases/metadata/1.root.json\"\n"
             "check_every_s = 3600\nreport_every_s = 3600\n");
  auto update = [&](const std::string& log_name) {
    ChildProcess process({SHOAL_AGENT, "update", "--config", (dir / "agent.toml").string()}, dir / log_name);
    INFO(process.log());
    CHECK(process.wait() == 0);
    return process.log();
  };
  CHECK_THAT(update("update-1.log"), Catch::Contains("installed logreg version 1 (full file"));
  releases.publish(2);
  CHECK_THAT(update("update-2.log"), Catch::Contains("installed logreg version 2 (delta from 1"));

  // `run` checks at once, then every check_every_s: version 3 arrives without a command.
  releases.publish(3);
  ChildProcess agent({SHOAL_AGENT, "run", "--config", (dir / "agent.toml").string()}, dir / "agent.log");
  INFO(agent.log());
  REQUIRE(eventually([&] { return agent.log().find("release check: installed logreg version 3") != std::string::npos; },
                     60s));
  // The install is reported to the aggregator, with the new version's accuracy on the held-out data.
  const auto metrics_path = dir / "aggregator" / "metrics.jsonl";
  std::string health;
  REQUIRE(eventually(
      [&] {
        auto text = base::read_file(metrics_path, 1 << 24);
        const auto at = text ? text->find("\"event\":\"health\"") : std::string::npos;
        if (at == std::string::npos) return false;
        health = text->substr(text->rfind('\n', at) + 1);
        health = health.substr(0, health.find('\n'));
        return true;
      },
      60s));
  INFO(health);
  const auto line = nlohmann::json::parse(health);
  CHECK(line["report"] == "install");
  CHECK(line["model"] == "logreg");
  CHECK(line["active_version"] == 3);
  CHECK(line["previous_version"] == 2);
  CHECK(line["attempted_version"] == 3);
  CHECK(line["smoke_test"] == "passed");
  CHECK(line["device"] == crypto::to_hex(device.public_identity().ed25519()));
  REQUIRE(line["accuracy"].is_number());
  CHECK(line["accuracy"].get<double>() >= 0);
  CHECK(line["accuracy"].get<double>() <= 1);
  CHECK(line["accuracy_samples"] == 10000);  // the whole held-out set: the test set
  CHECK(WIFEXITED(agent.kill(SIGTERM)));
  CHECK(aggregator.log().find("refused a release fetch") == std::string::npos);
}
