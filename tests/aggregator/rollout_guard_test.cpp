// Automatic rollout halts: devices send health reports over CurveZMQ to a
// running aggregator with a rollout policy, which records them in its
// metrics log and halts the rollout in the repository it serves, with the
// online rollout key.
#include "shoal/aggregator/rollout_guard.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <future>
#include <sstream>

#include "shoal/aggregator/aggregator_server.h"
#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/updater/release_installer.h"
#include "shoal/updater/rollout_control.h"
#include "shoal/weights/weights_file.h"
#include "temp_dir.h"

using namespace shoal;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

weights::Weights model_version(std::uint64_t version) {
  auto layout = *weights::Layout::create({{"w", {16}}});
  return *weights::Weights::from_values(layout, version, std::vector<float>(16, 0.1f * static_cast<float>(version)));
}

// A release repository with versions 1 and 2 of "cnn", the rollout role
// delegated to an online key, and a rollout of version 2 to every device.
struct Releases {
  shoal::testing::TempDir dir;
  crypto::IdentityKeyPair root = crypto::IdentityKeyPair::generate(), targets = crypto::IdentityKeyPair::generate(),
                          online = crypto::IdentityKeyPair::generate(), rollout = crypto::IdentityKeyPair::generate();
  fs::path repo = dir / "releases";

  Releases() {
    std::map<updater::RoleName, updater::RoleKeyChoice> keys;
    keys[updater::RoleName::root].keys = {root.public_identity()};
    keys[updater::RoleName::targets].keys = {targets.public_identity()};
    keys[updater::RoleName::snapshot].keys = {online.public_identity()};
    keys[updater::RoleName::timestamp].keys = {online.public_identity()};
    const auto now = updater::now_utc();
    auto repository = updater::ReleaseRepository::init(repo, keys, now);
    REQUIRE(repository);
    REQUIRE(repository->sign(updater::RoleName::root, root));
    updater::DelegationChoice delegation{"rollout", {rollout.public_identity()}, 1, true, {"rollout/*"}, {}};
    REQUIRE(repository->delegate(delegation, "targets", now));
    REQUIRE(repository->sign_delegated("rollout", rollout));
    for (std::uint64_t version : {1, 2}) {
      REQUIRE(repository->add(model_version(version), "cnn", 1, now));
      REQUIRE(repository->sign(updater::RoleName::targets, targets));
      REQUIRE(repository->publish(online, online, now));
    }
    const updater::OnlineKeys online_keys{&rollout, &online, &online};
    REQUIRE(updater::start_rollout(*repository, "cnn", 2, {{100, "", {}}}, 0, online_keys, now));
    REQUIRE(crypto::save_identity_key(dir / "rollout.key", {crypto::KeyRole::release, rollout}));
    REQUIRE(crypto::save_identity_key(dir / "online.key", {crypto::KeyRole::release, online}));
  }

  updater::RolloutState state() {
    auto repository = updater::ReleaseRepository::open(repo);
    REQUIRE(repository);
    auto rollout = updater::current_rollout(*repository, "cnn");
    REQUIRE(rollout);
    REQUIRE(*rollout);
    return (*rollout)->state;
  }
};

}  // namespace

TEST_CASE("health reports reach the aggregator's metrics log, and a failing rollout is halted by the aggregator") {
  Releases releases;
  shoal::testing::TempDir dir;
  const auto server_keys = crypto::IdentityKeyPair::generate();
  const auto device_keys = crypto::IdentityKeyPair::generate();
  REQUIRE(crypto::save_identity_key(dir / "server.key", {crypto::KeyRole::server, server_keys}));
  REQUIRE(base::write_file_durably(dir / "enrolled.txt",
                                   crypto::format_ed25519_public(device_keys.public_identity().ed25519()) + "\n"));
  REQUIRE(weights::write_weights_file(dir / "initial.weights", model_version(0)));
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

namespace {

// A device of the simulated fleet: its own trust directory and model store, its key, and whether its smoke test fails.
struct FleetDevice {
  fs::path dir;
  crypto::IdentityKeyPair key = crypto::IdentityKeyPair::generate();
  bool fails_smoke_test = false;
  std::string hex() const { return crypto::to_hex(key.public_identity().ed25519()); }
};

// Updates `device` from `repo` and returns the health report it would send.
std::pair<Result<updater::InstallOutcome>, std::optional<protocol::HealthReport>> update(const fs::path& repo,
                                                                                            const FleetDevice& device) {
  updater::DirectoryFetcher fetcher(repo);
  auto client = updater::TufClient::open(device.dir / "trust");
  REQUIRE(client);
  auto store = updater::ModelStore::open(device.dir / "models");
  REQUIRE(store);
  updater::InstallOptions options;
  options.model = "cnn";
  options.start_time = updater::now_utc();
  options.device_key_hex = device.hex();
  std::optional<std::uint64_t> attempted;
  options.on_attempt = [&](std::uint64_t version) { attempted = version; };
  options.smoke_test = [&](const weights::Weights&) -> Status {
    if (device.fails_smoke_test) return make_error(ErrorCode::verification, "the probe's output is NaN");
    return ok_status();
  };
  auto outcome = updater::install_latest_release(fetcher, *client, *store, options);
  auto versions = updater::ModelStore::open(device.dir / "models");
  REQUIRE(versions);
  auto version_of = [](const std::optional<std::string>& file) -> std::uint64_t {
    return file ? std::stoull(file->substr(1)) : 0;  // "v12-....weights"
  };
  protocol::HealthReport report{"cnn", "periodic", version_of(versions->active()), version_of(versions->previous()),
                                0, "", "not_run", 0, 0.0, 0};
  if (outcome && outcome->installed) {
    report.event = "install";
    report.attempted_version = outcome->version;
    report.smoke_test = "passed";
  } else if (outcome && outcome->halted_rollback) {
    report.event = "rollback";
  } else if (!outcome && attempted) {
    report.event = "install";
    report.attempted_version = *attempted;
    report.failed_step = updater::failed_install_step(outcome.error());
    report.smoke_test = "failed";
  }
  return {std::move(outcome), report};
}

}  // namespace

TEST_CASE("a staged rollout to 1,000 devices where 5% fail the smoke test is halted by the aggregator in its first stage, and those that installed roll back") {
  Releases releases;
  shoal::testing::TempDir dir;
  // Every device runs version 1, from a copy of one device's state; version 2's
  // rollout then starts over as a staged one: 10%, 50%, 100%.
  constexpr int kDevices = 1000;
  std::vector<FleetDevice> fleet(kDevices);
  const fs::path template_dir = dir / "template";
  {
    auto root = base::read_file(releases.repo / "metadata" / "1.root.json", 1 << 20);
    REQUIRE(root);
    REQUIRE(updater::TufClient::trust_root(template_dir / "trust", base::text_bytes(*root), "1.root.json"));
    auto store = updater::ModelStore::open(template_dir / "models");
    REQUIRE(store);
    auto staged = store->stage(model_version(1));
    REQUIRE(staged);
    REQUIRE(store->activate(*staged));
  }
  for (int i = 0; i < kDevices; ++i) {
    fleet[i].dir = dir / ("device-" + std::to_string(i));
    fs::copy(template_dir, fleet[i].dir, fs::copy_options::recursive);
  }
  // 5% of the fleet fails, spread evenly over the rollout buckets (every 20th in bucket order).
  std::vector<FleetDevice*> by_bucket;
  for (auto& device : fleet) by_bucket.push_back(&device);
  std::sort(by_bucket.begin(), by_bucket.end(), [](const FleetDevice* a, const FleetDevice* b) {
    return updater::rollout_bucket("cnn", a->hex()) < updater::rollout_bucket("cnn", b->hex());
  });
  for (std::size_t i = 0; i < by_bucket.size(); i += 20) by_bucket[i]->fails_smoke_test = true;
  {
    auto repository = updater::ReleaseRepository::open(releases.repo);
    REQUIRE(repository);
    const updater::OnlineKeys keys{&releases.rollout, &releases.online, &releases.online};
    REQUIRE(updater::start_rollout(*repository, "cnn", 2, {{10, "", {}}, {50, "", {}}, {100, "", {}}}, 3600, keys,
                                   updater::now_utc()));
  }

  // The aggregator's service, as the fleet engine runs it: no sockets, messages handed in.
  REQUIRE(crypto::save_identity_key(dir / "server.key", {crypto::KeyRole::server, crypto::IdentityKeyPair::generate()}));
  REQUIRE(base::write_file_durably(dir / "enrolled.txt", ""));
  REQUIRE(weights::write_weights_file(dir / "initial.weights", model_version(0)));
  aggregator::AggregatorConfig config;
  config.server_key = dir / "server.key";
  config.enrolment = dir / "enrolled.txt";
  config.initial_weights = dir / "initial.weights";
  config.state_dir = dir / "state";
  config.release_repository = releases.repo;
  config.rollout.rollout_key = releases.dir / "rollout.key";
  config.rollout.snapshot_key = releases.dir / "online.key";
  config.rollout.timestamp_key = releases.dir / "online.key";  // the default policy: over 2% of at least 20 devices
  std::ostringstream log;
  auto service = aggregator::RoundService::open(config, log, aggregator::Clock::now());
  REQUIRE(service);
  auto send = [&](const FleetDevice& device, const protocol::HealthReport& report) {
    auto frames = protocol::encode(report);
    std::size_t bytes = 0;
    for (const auto& frame : frames) bytes += frame.size();
    (*service)->on_message(crypto::format_ed25519_public(device.key.public_identity().ed25519()),
                           protocol::decode_envelope(std::move(frames), protocol::Limits{}), bytes,
                           aggregator::Clock::now());
  };

  // The first stage: about 100 devices try version 2, about 5 of them fail.
  std::size_t installed = 0, failed = 0, held = 0;
  for (const auto& device : fleet) {
    auto [outcome, report] = update(releases.repo, device);
    if (outcome && outcome->installed) {
      ++installed;
    } else if (!outcome) {
      CHECK_THAT(outcome.error().message, Catch::Contains("install step 'smoke test'"));
      ++failed;
    } else {
      held += outcome->outside_rollout;
    }
    send(device, *report);
  }
  REQUIRE(installed > 50);
  CHECK(failed >= 3);
  CHECK(held + installed + failed == kDevices);
  const auto seen = (*service)->rollout_guard().health().health("cnn", 2);
  CHECK(seen.tried == installed + failed);
  CHECK(seen.failed == failed);
  CHECK(releases.state() == updater::RolloutState::active);  // nothing halts between ticks

  // The next tick halts the rollout, still in its first stage.
  REQUIRE((*service)->on_tick(aggregator::Clock::now()));
  INFO(log.str());
  REQUIRE(releases.state() == updater::RolloutState::halted);
  CHECK_THAT(log.str(), Catch::Contains("halted the rollout of cnn version 2 in stage 1: " + std::to_string(failed) +
                                        " of " + std::to_string(installed + failed) + " devices failed version 2"));

  // At their next check the devices that installed version 2 roll back; none runs it afterwards.
  std::size_t rolled_back = 0;
  for (const auto& device : fleet) {
    auto [outcome, report] = update(releases.repo, device);
    REQUIRE(outcome);
    CHECK(outcome->version == 1);
    rolled_back += outcome->halted_rollback == std::optional<std::uint64_t>(2);
    send(device, *report);
  }
  CHECK(rolled_back == installed);
  CHECK((*service)->rollout_guard().health().health("cnn", 2).running == 0);
}
