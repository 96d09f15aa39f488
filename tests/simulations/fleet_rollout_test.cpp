// A staged rollout on the fleet engine: 1,000 devices check a release
// repository built by shoal's release tools, send health reports through the
// real encoder to the round service, whose rollout guard halts the rollout
// with the online key; the devices on the halted version roll back.
#include <catch2/catch.hpp>

#include <mutex>
#include <sstream>

#include "shoal/base/durable_file.h"
#include "shoal/inference/model.h"
#include "shoal/simulations/fleet_engine.h"
#include "shoal/weights/weights_file.h"
#include "rollout_fixture.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;

namespace {

std::size_t count_lines_with(const std::string& text, const std::vector<std::string>& parts) {
  std::size_t count = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    bool all = true;
    for (const auto& part : parts) all = all && line.find(part) != std::string::npos;
    count += all;
  }
  return count;
}

// An engine's server side in `dir`: a logreg model, plain rounds; devices check `releases` for "cnn" from version 1.
simulations::EngineSettings fleet_settings(const std::filesystem::path& dir, const shoal::testing::Releases& releases) {
  auto model = inference::Model::from_zoo("logreg", 1);
  REQUIRE(model);
  REQUIRE(weights::write_weights_file(dir / "initial.weights", model->get_weights(0)));
  simulations::EngineSettings settings;
  settings.server.initial_weights = dir / "initial.weights";
  settings.server.state_dir = dir / "aggregator";
  settings.server.round.secure.enabled = false;
  settings.wall_clock_log = dir / "wall_clock.jsonl";
  settings.model_name = "logreg";
  // Every device runs version 1 and checks every 10 virtual minutes.
  settings.releases = simulations::FleetReleases{releases.repo, releases.repo / "metadata" / "1.root.json", "cnn", 1,
                                                 600, 0};
  return settings;
}

}  // namespace

TEST_CASE("a staged rollout to 1,000 devices of the fleet engine, 5% failing the smoke test, halts in its first stage, and the devices that installed roll back") {
  shoal::testing::Releases releases;
  shoal::testing::TempDir dir;
  {
    auto repository = updater::ReleaseRepository::open(releases.repo);
    REQUIRE(repository);
    const updater::OnlineKeys keys{&releases.rollout, &releases.online, &releases.online};
    REQUIRE(updater::start_rollout(*repository, "cnn", 2, {{10, "", {}}, {50, "", {}}, {100, "", {}}}, 3600, keys,
                                   updater::now_utc()));
  }
  constexpr std::size_t kDevices = 1000;
  auto settings = fleet_settings(dir.path(), releases);
  settings.server.round.min_devices = 10;
  settings.server.round.final_version = 5;  // training rounds beside the rollout; the fleet runs on to run_for_s
  settings.server.release_repository = releases.repo;
  settings.server.rollout.rollout_key = releases.dir / "rollout.key";
  settings.server.rollout.snapshot_key = releases.dir / "online.key";
  settings.server.rollout.timestamp_key = releases.dir / "online.key";  // the default policy: over 2% of at least 20
  settings.seed = 7;
  settings.protocol_only = true;
  settings.session_threads = 2;
  settings.releases->smoke_failure_share = 0.05;
  settings.run_for_s = 1800;  // three checks each

  client::Dataset train;
  train.sample_shape = {1, 28, 28};
  train.features.assign(kDevices * 28 * 28, 0.0f);
  for (std::size_t i = 0; i < kDevices; ++i) train.labels.push_back(static_cast<std::int64_t>(i % 10));
  simulations::Partition partition(kDevices);
  for (std::size_t i = 0; i < kDevices; ++i) partition[i] = {i};
  auto pool = simulations::TrainerPool::create(1, [] { return inference::Model::from_zoo("logreg", 1); });
  REQUIRE(pool);
  std::ostringstream server_log;
  std::mutex device_log_mutex;
  std::string device_log;
  auto engine = simulations::FleetEngine::create(settings, train, partition, **pool, server_log,
                                                 [&](const std::string& line) {
                                                   std::lock_guard lock(device_log_mutex);
                                                   if (line.find("release") != std::string::npos) {
                                                     device_log += line + "\n";
                                                   }
                                                 });
  REQUIRE(engine);
  REQUIRE((*engine)->run());
  INFO(server_log.str());
  INFO(device_log);
  CHECK(device_log.empty());  // no release check failed
  CHECK((*engine)->service().coordinator().global().version() == 5);  // the training rounds ran beside it
  CHECK((*engine)->now() >= 1200s);  // and the fleet went on checking releases

  // Halted, in its first stage, by the aggregator.
  REQUIRE(releases.state() == updater::RolloutState::halted);
  CHECK_THAT(server_log.str(), Catch::Contains("halted the rollout of cnn version 2 in stage 1: "));

  // What the devices reported, as the metrics log holds it.
  const auto metrics = base::read_file(settings.server.metrics_path(), 64 << 20);
  REQUIRE(metrics);
  const auto installed = count_lines_with(*metrics, {"\"event\":\"health\"", "\"report\":\"install\"",
                                                     "\"attempted_version\":2", "\"smoke_test\":\"passed\""});
  const auto failed = count_lines_with(*metrics, {"\"event\":\"health\"", "\"report\":\"install\"",
                                                  "\"attempted_version\":2", "\"failed_step\":\"smoke test\""});
  const auto rolled_back = count_lines_with(*metrics, {"\"event\":\"health\"", "\"report\":\"rollback\"",
                                                       "\"active_version\":1", "\"attempted_version\":2"});
  CHECK(count_lines_with(*metrics, {"\"event\":\"rollout_halt\"", "\"version\":2"}) == 1);
  // About a tenth of the fleet tried version 2 before the halt, some of them failing; none beyond the first stage.
  CHECK(installed + failed >= 20);
  CHECK(installed + failed <= kDevices / 10 + kDevices / 50);
  CHECK(failed >= 1);
  // Every device that installed it rolled back at its next check, and none runs it now.
  CHECK(rolled_back == installed);
  const auto health = (*engine)->service().rollout_guard().health().health("cnn", 2);
  CHECK(health.tried == installed + failed);
  CHECK(health.failed == failed);
  CHECK(health.running == 0);
}

TEST_CASE("a fleet that checks releases needs run_for_s, and a release check's settings in range") {
  shoal::testing::Releases releases;
  shoal::testing::TempDir dir;
  auto settings = fleet_settings(dir.path(), releases);
  client::Dataset train;
  train.sample_shape = {1, 28, 28};
  train.features.assign(2 * 28 * 28, 0.0f);
  train.labels = {0, 1};
  simulations::Partition partition{{0}, {1}};
  auto pool = simulations::TrainerPool::create(1, [] { return inference::Model::from_zoo("logreg", 1); });
  REQUIRE(pool);
  std::ostringstream log;
  auto create = [&] { return simulations::FleetEngine::create(settings, train, partition, **pool, log, [](const std::string&) {}); };
  auto no_limit = create();
  REQUIRE_FALSE(no_limit);
  CHECK_THAT(no_limit.error().message, Catch::Contains("run_for_s"));
  settings.run_for_s = 60;
  settings.releases->smoke_failure_share = 1.5;
  auto share = create();
  REQUIRE_FALSE(share);
  CHECK_THAT(share.error().message, Catch::Contains("releases.smoke_failure_share"));
  settings.releases->smoke_failure_share = 0;
  settings.releases->check_every_s = 0;
  auto period = create();
  REQUIRE_FALSE(period);
  CHECK_THAT(period.error().message, Catch::Contains("releases.check_every_s must be above 0"));
  settings.releases->check_every_s = 600;
  const auto model = settings.releases->model;
  settings.releases->model.clear();
  auto unnamed = create();
  REQUIRE_FALSE(unnamed);
  CHECK_THAT(unnamed.error().message, Catch::Contains("releases.model is empty"));
  settings.releases->model = model;
  settings.releases->trusted_root = dir / "missing.root.json";
  auto root = create();
  REQUIRE_FALSE(root);
  CHECK_THAT(root.error().message, Catch::Contains("missing.root.json"));
}
