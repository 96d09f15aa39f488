#include "shoal/client/agent_config.h"

#include <catch2/catch.hpp>

#include "shoal/base/durable_file.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::client;

namespace {

const std::string kBase =
    "[agent]\nkey = \"device.key\"\n[aggregator]\npublic_key = \"server.pub\"\n"
    "[data]\nimages = \"x.idx\"\nlabels = \"y.idx\"\n";

Result<AgentConfig> load(const std::string& text) {
  shoal::testing::TempDir dir;
  const auto path = dir.path() / "agent.toml";
  REQUIRE(base::write_file_durably(path, text));
  return load_agent_config(path);
}

}  // namespace

TEST_CASE("the shipped agent configs load, every key known") {
  for (const char* name : {"/agent-1.toml", "/agent-2.toml"}) {
    auto config = load_agent_config(std::string(SHOAL_CONFIGS) + name);
    REQUIRE(config);
    CHECK(config->shards == 2);
    CHECK(config->model == "mlp");
    CHECK_FALSE(config->held_out.empty());
  }
}

TEST_CASE("agent config errors name the file and the setting") {
  auto good = load(kBase + "[data.held_out]\ncsv = \"held.csv\"\n");
  REQUIRE(good);
  CHECK(good->held_out.csv.filename() == "held.csv");

  auto shard = load(kBase + "shard = 2\nshards = 2\n");
  REQUIRE_FALSE(shard);
  CHECK(shard.error().message.find("agent.toml: agent config: data.shard must be below data.shards") !=
        std::string::npos);

  auto labels = load("[agent]\nkey = \"k\"\n[aggregator]\npublic_key = \"p\"\n[data]\nimages = \"x.idx\"\n");
  REQUIRE_FALSE(labels);
  CHECK(labels.error().message.find("agent config: data needs both images and labels") != std::string::npos);

  auto no_key = load("[aggregator]\npublic_key = \"p\"\n[data]\ncsv = \"d.csv\"\n");
  REQUIRE_FALSE(no_key);
  CHECK(no_key.error().message.find("agent config: agent.key is required") != std::string::npos);

  auto zero = load(kBase + "[debug]\nzero_update = true\n");
  REQUIRE(zero);
  CHECK(zero->debug.zero_update);
  CHECK_FALSE(good->debug.zero_update);

  auto keep = load(kBase + "[debug]\nkeep_updates = true\n");
  REQUIRE_FALSE(keep);
  CHECK(keep.error().message.find("debug.keep_updates needs agent.state_dir") != std::string::npos);

  auto typo = load(kBase + "[eligibility]\nrequire_ac = true\n");
  REQUIRE_FALSE(typo);
  CHECK(typo.error().message.find("unknown key 'eligibility.require_ac'") != std::string::npos);
}

TEST_CASE("a server plan the trainer cannot follow is refused by field") {
  protocol::WirePlan plan;
  CHECK(training_plan_from_wire(plan));
  plan.batch_size = 0;
  auto refused = training_plan_from_wire(plan);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("batch_size") != std::string::npos);
}

TEST_CASE("release settings: the aggregator's repository by name, a directory by path, bad values by key") {
  const std::string with_state = "[agent]\nkey = \"device.key\"\nstate_dir = \"s\"\n[aggregator]\npublic_key = \"p\"\n"
                                 "[data]\ncsv = \"d.csv\"\n";
  auto by_name = load(with_state + "[release]\nrepository = \"aggregator\"\ntrusted_root = \"root.json\"\n");
  REQUIRE(by_name);
  CHECK(by_name->release.repository == "aggregator");
  CHECK(by_name->release.trusted_root.filename() == "root.json");
  CHECK(by_name->release.trusted_root.is_absolute());  // relative to the config file
  auto by_path = load(with_state + "[release]\nrepository = \"releases\"\n");
  REQUIRE(by_path);
  CHECK(std::filesystem::path(by_path->release.repository).is_absolute());

  auto negative = load(with_state + "[release]\nrepository = \"releases\"\ncheck_every_s = -5\n");
  REQUIRE_FALSE(negative);
  CHECK_THAT(negative.error().message, Catch::Contains("key 'release.check_every_s': -5 is out of range"));
  auto over_http = load(with_state + "[release]\nrepository = \"https://mirror.example/fleet/\"\n"
                                     "targets_url = \"cdn-copy\"\n");
  REQUIRE(over_http);
  CHECK(over_http->release.repository == "https://mirror.example/fleet/");  // a URL as written
  CHECK(std::filesystem::path(over_http->release.targets_url).is_absolute());  // a directory, relative to the file
  auto no_ca = load(with_state + "[release]\nrepository = \"https://mirror.example/fleet\"\nca_file = \"ca.pem\"\n");
  REQUIRE_FALSE(no_ca);
  CHECK_THAT(no_ca.error().message, Catch::Contains("release.ca_file"));
  CHECK_THAT(no_ca.error().message, Catch::Contains("ca.pem is not a file"));
  auto stateless = load(kBase + "[release]\nrepository = \"releases\"\n");
  REQUIRE_FALSE(stateless);
  CHECK_THAT(stateless.error().message, Catch::Contains("release.repository needs agent.state_dir"));
}

TEST_CASE("serve settings: on with a port, what is served by name, bad values by key") {
  const std::string base = "[agent]\nkey = \"device.key\"\nstate_dir = \"device\"\n"
                           "[aggregator]\npublic_key = \"server.pub\"\n[data]\nimages = \"x.idx\"\nlabels = \"y.idx\"\n";
  const std::string served = base + "[serve]\nport = 0\n";
  auto on = load(served + "model = \"latest-global\"\nmax_batch = 8\nmax_delay_us = 250\n");
  REQUIRE(on);
  CHECK(on->serve.enabled);
  CHECK(on->serve.source == ServeSource::latest_global);
  CHECK(on->serve.service.batching.max_batch == 8);
  CHECK(on->serve.service.batching.max_delay == std::chrono::microseconds(250));
  auto off = load(kBase);
  REQUIRE(off);
  CHECK_FALSE(off->serve.enabled);

  auto source = load(served + "model = \"newest\"\n");
  REQUIRE_FALSE(source);
  CHECK_THAT(source.error().message, Catch::Contains("serve.model") && Catch::Contains("\"latest-global\""));
  auto remote = load(served + "host = \"0.0.0.0\"\n");
  REQUIRE_FALSE(remote);
  CHECK_THAT(remote.error().message, Catch::Contains("serve.host '0.0.0.0' is not a loopback address"));
  auto port = load(base + "[serve]\nport = 70000\n");
  REQUIRE_FALSE(port);
  CHECK_THAT(port.error().message, Catch::Contains("serve.port 70000"));
  auto queue = load(served + "max_batch = 64\nmax_queued_samples = 8\n");
  REQUIRE_FALSE(queue);
  CHECK_THAT(queue.error().message, Catch::Contains("serve.max_queued_samples is below serve.max_batch"));
  auto delay = load(served + "max_delay_us = -1\n");
  REQUIRE_FALSE(delay);
  CHECK_THAT(delay.error().message, Catch::Contains("serve.max_delay_us"));

  // `serve --config` needs a state directory and a port, not an aggregator or data.
  shoal::testing::TempDir dir;
  const auto path = dir / "serve.toml";
  REQUIRE(base::write_file_durably(path, "[agent]\nstate_dir = \"device\"\n"));
  auto portless = load_agent_config(path, AgentUse::serve);
  REQUIRE_FALSE(portless);
  CHECK_THAT(portless.error().message, Catch::Contains("serve.port (0: any free port) or serve.unix_socket is required"));
  REQUIRE(base::write_file_durably(path, "[agent]\nstate_dir = \"device\"\n[serve]\nport = 0\n"));
  CHECK(load_agent_config(path, AgentUse::serve));
  // A Unix socket alone: no port, the path relative to the config file.
  REQUIRE(base::write_file_durably(path, "[agent]\nstate_dir = \"device\"\n[serve]\nunix_socket = \"run/serve.sock\"\n"));
  auto socket_only = load_agent_config(path, AgentUse::serve);
  REQUIRE(socket_only);
  CHECK(socket_only->serve.enabled);
  CHECK_FALSE(socket_only->serve.service.tcp);
  CHECK(socket_only->serve.service.unix_socket == dir / "run" / "serve.sock");
  REQUIRE(base::write_file_durably(path, "[agent]\nstate_dir = \"device\"\n[serve]\nunix_socket = \"" +
                                             std::string(120, 's') + "\"\n"));
  auto long_path = load_agent_config(path, AgentUse::serve);
  REQUIRE_FALSE(long_path);
  CHECK_THAT(long_path.error().message, Catch::Contains("serve.unix_socket") && Catch::Contains("at most 107"));
}
