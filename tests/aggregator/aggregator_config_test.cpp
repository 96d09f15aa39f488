#include "shoal/aggregator/aggregator_config.h"

#include <catch2/catch.hpp>

using namespace shoal;
using namespace shoal::aggregator;

namespace {

const std::string kServer = "[server]\nkey = \"server.key\"\nenrolment = \"enrolled.txt\"\nstate_dir = \"state\"\n";

Result<AggregatorConfig> parse(const std::string& text) {
  auto file = config::ConfigFile::parse(text, "/srv/aggregator.toml");
  REQUIRE(file);
  return read_aggregator_config(*file);
}

}  // namespace

TEST_CASE("the shipped aggregator config loads, every key known") {
  auto config = load_aggregator_config(SHOAL_CONFIGS "/aggregator.toml");
  REQUIRE(config);
  CHECK(config->round.final_version == 20);
  CHECK(config->strategy.kind == StrategyKind::fedavg);
  CHECK(config->round.evaluate_every == 1);
  CHECK(config->metrics_path() == config->state_dir / "metrics.jsonl");
}

TEST_CASE("aggregator config errors name the file and the setting") {
  auto good = parse(kServer + "[aggregation]\nstrategy = \"fedyogi\"\ncombiner = \"median\"\n[secure]\nenabled = false\n");
  REQUIRE(good);
  CHECK(good->strategy.kind == StrategyKind::fedyogi);
  CHECK(good->round.combiner == CombinerKind::median);
  CHECK(good->server_key == "/srv/server.key");

  auto strategy = parse(kServer + "[aggregation]\nstrategy = \"fedsgd\"\n");
  REQUIRE_FALSE(strategy);
  CHECK(strategy.error().message.rfind("/srv/aggregator.toml: key 'aggregation.strategy': ", 0) == 0);
  CHECK(strategy.error().message.find("fedavg") != std::string::npos);  // lists the valid names

  auto missing = parse("[server]\nenrolment = \"enrolled.txt\"\nstate_dir = \"state\"\n");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "/srv/aggregator.toml: aggregator config: server.key is required");

  auto fraction = parse(kServer + "[cohort]\nfraction = 2\n");
  REQUIRE_FALSE(fraction);
  CHECK(fraction.error().message == "/srv/aggregator.toml: round config: fraction must be in (0, 1]");

  auto deadline = parse(kServer + "[cohort]\ntrain_deadline_s = -1\n");
  REQUIRE_FALSE(deadline);
  CHECK(deadline.error().message.find("key 'cohort.train_deadline_s'") != std::string::npos);

  auto misspelt = parse(kServer + "[cohort]\nmin_device = 3\n");
  REQUIRE_FALSE(misspelt);
  CHECK(misspelt.error().message.find("unknown key 'cohort.min_device'") != std::string::npos);
}

TEST_CASE("secure-aggregation and privacy settings out of range name the setting") {
  auto defaults = parse(kServer);
  REQUIRE(defaults);
  CHECK(defaults->round.secure.enabled);  // secure by default
  const std::pair<std::string, std::string> cases[] = {
      {"[secure]\nbits = 40\n", "secure.bits must be in [8, 32]"},
      {"[secure]\nrange = 0\n", "secure.range must be positive"},
      {"[secure]\nweight_cap = 0\n", "secure.weight_cap must be positive"},
      {"[secure]\nupload_memory_mb = 0\n", "secure.upload_memory_mb must be in [1, 1048576]"},
      {"[secure]\nupload_memory_mb = 1048577\n", "secure.upload_memory_mb must be in [1, 1048576]"},
      {"[secure]\nupload_memory_mb = -5\n", "secure.upload_memory_mb"},
      {"[aggregation]\ncombiner = \"median\"\n", "combiner must be mean in secure mode"},
      {"[privacy]\nnoise_multiplier = 1.0\n", "privacy.clip_norm must be positive with noise"},
      {"[privacy]\nclip_norm = 1.0\ntarget_quantile = 1.5\n", "privacy.target_quantile must be in (0, 1)"},
      {"[privacy]\ndelta = 0\n", "privacy.delta must be in (0, 1)"},
      {"[privacy]\nepsilon_budget = -1\n", "privacy.epsilon_budget must be >= 0"},
  };
  for (const auto& [text, message] : cases) {
    auto config = parse(kServer + text);
    INFO(text);
    REQUIRE_FALSE(config);
    CHECK_THAT(config.error().message, Catch::Contains("/srv/aggregator.toml") && Catch::Contains(message));
  }
  auto misspelt = parse(kServer + "[privacy]\nnoise = 1.0\n");
  REQUIRE_FALSE(misspelt);
  CHECK_THAT(misspelt.error().message, Catch::Contains("unknown key 'privacy.noise'"));
}

TEST_CASE("a release repository to serve must be one shoal-release made") {
  auto none = parse(kServer + "[release]\nrepository = \"/nonexistent/releases\"\n");
  REQUIRE_FALSE(none);
  CHECK_THAT(none.error().message, Catch::Contains("release.repository /nonexistent/releases holds no metadata/"));
  auto off = parse(kServer + "[release]\nrepository = \"\"\n");
  REQUIRE(off);
  CHECK(off->release_repository.empty());
}

TEST_CASE("memory limits are read in MiB and out-of-range values name the key") {
  auto good = parse(kServer + "[limits]\npeer_memory_mb = 32\ntotal_memory_mb = 512\n");
  REQUIRE(good);
  CHECK(good->memory.per_peer_bytes == std::size_t{32} << 20);
  CHECK(good->memory.total_bytes == std::size_t{512} << 20);
  const std::pair<std::string, std::string> cases[] = {
      {"[limits]\npeer_memory_mb = 0\n", "limits.peer_memory_mb must be in [1, 1048576]"},
      {"[limits]\ntotal_memory_mb = 2000000\n", "limits.total_memory_mb must be in [1, 1048576]"},
      {"[limits]\npeer_memory_mb = 128\ntotal_memory_mb = 64\n", "total_memory_mb must be at least limits.peer_memory_mb"},
  };
  for (const auto& [text, message] : cases) {
    auto config = parse(kServer + text);
    INFO(text);
    REQUIRE_FALSE(config);
    CHECK_THAT(config.error().message, Catch::Contains("/srv/aggregator.toml") && Catch::Contains(message));
  }
}

TEST_CASE("rollout policy settings are read, and out-of-range values or a policy without a repository name the key") {
  auto good = parse(kServer + "[rollout]\nmax_failure_share = 0.05\nmin_reports = 50\nmax_accuracy_drop = 0.01\n"
                              "min_accuracy_devices = 30\n");
  REQUIRE(good);
  CHECK(good->rollout.policy.max_failure_share == 0.05);
  CHECK(good->rollout.policy.min_reports == 50);
  CHECK(good->rollout.policy.max_accuracy_drop == 0.01);
  CHECK(good->rollout.policy.min_accuracy_devices == 30);
  CHECK_FALSE(good->rollout.enabled());
  const std::pair<std::string, std::string> cases[] = {
      {"[rollout]\nmax_failure_share = 1.5\n", "rollout.max_failure_share must be in [0, 1]"},
      {"[rollout]\nmax_accuracy_drop = -0.1\n", "rollout.max_accuracy_drop must be in [0, 1]"},
      {"[rollout]\nmin_reports = 0\n", "rollout.min_reports and rollout.min_accuracy_devices must be at least 1"},
      {"[rollout]\nrollout_key = \"rollout.key\"\n", "rollout.rollout_key needs release.repository"},
  };
  for (const auto& [text, message] : cases) {
    auto config = parse(kServer + text);
    INFO(text);
    REQUIRE_FALSE(config);
    CHECK_THAT(config.error().message, Catch::Contains("/srv/aggregator.toml") && Catch::Contains(message));
  }
}
