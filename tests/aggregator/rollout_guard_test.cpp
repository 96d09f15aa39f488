// Automatic rollout halts: devices send health reports over CurveZMQ to a
// running aggregator with a rollout policy, which records them in its
// metrics log and halts the rollout in the repository it serves, with the
// online rollout key.
#include "shoal/aggregator/rollout_guard.h"

#include <catch2/catch.hpp>

#include <future>
#include <sstream>

#include "shoal/aggregator/aggregator_server.h"
#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/updater/rollout_control.h"
#include "shoal/weights/weights_file.h"
#include "rollout_fixture.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;


TEST_CASE("health reports reach the aggregator's metrics log, and a failing rollout is halted by the aggregator") {
  shoal::testing::Releases releases;
  shoal::testing::TempDir dir;
  const auto server_keys = crypto::IdentityKeyPair::generate();
  const auto device_keys = crypto::IdentityKeyPair::generate();
  REQUIRE(crypto::save_identity_key(dir / "server.key", {crypto::KeyRole::server, server_keys}));
  REQUIRE(base::write_file_durably(dir / "enrolled.txt",
                                   crypto::format_ed25519_public(device_keys.public_identity().ed25519()) + "\n"));
  REQUIRE(weights::write_weights_file(dir / "initial.weights", shoal::testing::model_version(0)));
  aggregator::AggregatorConfig config;
  config.bind = "tcp://127.0.0.1:*";
  config.server_key = dir / "server.key";
  config.enrolment = dir / "enrolled.txt";
  config.initial_weights = dir / "initial.weights";
  config.state_dir = dir / "state";
  config.round.min_devices = 5;  // no round starts: only health matters here
  config.release_repository = releases.repo;
  config.rollout.rollout_key = releases.dir / "rollout.key";
  config.rollout.snapshot_key = releases.dir / "online.key";
  config.rollout.timestamp_key = releases.dir / "online.key";
  config.rollout.policy.min_reports = 1;
  config.rollout.policy.max_failure_share = 0.2;
  REQUIRE(config.validate());

  std::ostringstream log;
  auto server = aggregator::AggregatorServer::open(config, log);
  REQUIRE(server);
  std::atomic<bool> stop{false};
  auto loop = std::async(std::launch::async, [&] { return static_cast<bool>((*server)->run(stop)); });
  zmq::context_t context;
  auto device = protocol::connect_client_socket(context, device_keys, server_keys.public_identity(),
                                                (*server)->endpoint(), {});
  REQUIRE(device);

  // A report the decoder refuses, then the device's failed install of version 2.
  protocol::HealthReport bad{"cnn", "reboot", 1, 0, 2, "", "not_run", 0, 0, 0};
  REQUIRE(protocol::send_to_server(*device, protocol::encode(bad)));
  auto refusal = protocol::receive_from_server(*device, {}, 10s);
  REQUIRE(refusal);
  REQUIRE(*refusal);
  CHECK(protocol::decode<protocol::Refusal>(**refusal)->detail.find("event") != std::string::npos);
  CHECK(releases.state() == updater::RolloutState::active);
  const protocol::HealthReport failed{"cnn", "install", 1, 0, 2, "smoke test", "failed", 0, 0.8, 100};
  REQUIRE(protocol::send_to_server(*device, protocol::encode(failed)));

  // The halt is published within a tick or two; each fetch is a round trip with the loop.
  std::optional<updater::Rollout> seen;
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  for (std::uint64_t request = 1; std::chrono::steady_clock::now() < give_up; ++request) {
    REQUIRE(protocol::send_to_server(*device, protocol::encode(protocol::FetchFile{request, "targets/rollout/cnn.json",
                                                                                   0, 1 << 20})));
    auto reply = protocol::receive_from_server(*device, {}, 10s);
    REQUIRE(reply);
    REQUIRE(*reply);
    auto chunk = protocol::decode<protocol::FileChunk>(**reply);
    REQUIRE(chunk);
    REQUIRE(chunk->status == "ok");
    auto rollout = updater::parse_rollout((**reply).payload(0), "rollout/cnn.json");
    REQUIRE(rollout);
    if (rollout->state == updater::RolloutState::halted) {
      seen = *rollout;
      break;
    }
  }
  stop = true;
  REQUIRE(loop.get());
  INFO(log.str());
  REQUIRE(seen);
  CHECK_THAT(seen->reason, Catch::Contains("automatic: 1 of 1 devices failed version 2"));
  CHECK_THAT(log.str(), Catch::Contains("install failed at smoke test"));
  CHECK_THAT(log.str(), Catch::Contains("halted the rollout of cnn version 2 in stage 1"));

  // The metrics log holds the report and the halt; replaying it gives the health the server saw.
  const auto metrics = base::read_file(config.metrics_path(), 1 << 20);
  REQUIRE(metrics);
  CHECK_THAT(*metrics, Catch::Contains("\"event\":\"health\""));
  CHECK_THAT(*metrics, Catch::Contains("\"event\":\"rollout_halt\""));
  auto replayed = aggregator::replay_health(config.metrics_path());
  REQUIRE(replayed);
  CHECK(replayed->health("cnn", 2).tried == 1);
  CHECK(replayed->health("cnn", 2).failed == 1);
}

TEST_CASE("a rollout policy needs its keys and a repository, and its thresholds in range") {
  aggregator::RolloutGuardConfig config;
  config.rollout_key = "/nonexistent/rollout.key";
  CHECK_FALSE(aggregator::RolloutGuard::open(config, "").ok());  // no repository
  auto missing = aggregator::RolloutGuard::open(config, "/nonexistent/releases");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().message, Catch::Contains("rollout.snapshot_key"));
  aggregator::RolloutGuardConfig off;
  CHECK(aggregator::RolloutGuard::open(off, "").ok());  // no policy: reports are recorded, nothing halts
}
