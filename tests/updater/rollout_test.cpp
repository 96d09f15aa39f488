// Staged rollouts: the rollout document, which devices a stage admits, and
// devices installing, holding back and rolling back as an operator starts,
// advances and halts a rollout through the online rollout role.
#include "shoal/updater/rollout.h"

#include <catch2/catch.hpp>

#include <fstream>

#include "release_fixture.h"
#include "shoal/base/byte_io.h"
#include "shoal/crypto/encoding.h"
#include "shoal/updater/rollout_control.h"
#include "shoal/updater/rollout_health.h"

using namespace shoal;
using namespace shoal::updater;
using shoal::testing::bytes_of;
using shoal::testing::ReleaseFixture;
namespace fs = std::filesystem;

namespace {

std::string random_device_key() {
  return crypto::to_hex(crypto::IdentityKeyPair::generate().public_identity().ed25519());
}

// A repository that delegates rollout/* to an online rollout key, with
// version 1 of "cnn" published, and a fleet of devices that install from it.
struct ConsistentBase : ReleaseFixture {
  ConsistentBase() { consistent_snapshot = true; }
};

struct RolloutFixture : ConsistentBase {
  crypto::IdentityKeyPair rollout_key = crypto::IdentityKeyPair::generate();
  ReleaseRepository repository = make_repository();
  OnlineKeys keys{&rollout_key, &snapshot_key, &timestamp_key};

  RolloutFixture() {
    DelegationChoice delegation;
    delegation.name = "rollout";
    delegation.keys = {rollout_key.public_identity()};
    delegation.paths = {"rollout/*"};
    delegation.terminating = true;
    REQUIRE(repository.delegate(delegation, "targets", now).ok());
    REQUIRE(repository.sign_delegated("rollout", rollout_key).ok());
    release(repository, 1);
  }

  // Device `name` with key `key_hex` updates; its directories are under the fixture's.
  Result<InstallOutcome> update(const std::string& name, const std::string& key_hex,
                                std::function<Status(const weights::Weights&)> smoke_test = {}) {
    const fs::path trust = temp / name / "trust";
    if (!fs::exists(trust / "root.json")) {
      auto root = base::read_file(repo_dir / "metadata" / "1.root.json", 1 << 20);
      REQUIRE(root.ok());
      REQUIRE(TufClient::trust_root(trust, bytes_of(*root), "1.root.json").ok());
    }
    DirectoryFetcher fetcher(repo_dir);
    auto client = TufClient::open(trust);
    REQUIRE(client.ok());
    auto store = ModelStore::open(temp / name / "models");
    REQUIRE(store.ok());
    InstallOptions options;
    options.model = "cnn";
    options.start_time = now;
    options.device_key_hex = key_hex;
    options.smoke_test = std::move(smoke_test);
    return install_latest_release(fetcher, *client, *store, options);
  }
};

}  // namespace

TEST_CASE("rollout stages parse from the command line's form") {
  auto stages = parse_rollout_stages("canary,1,10,50,100");
  REQUIRE(stages.ok());
  REQUIRE(stages->size() == 5);
  CHECK((*stages)[0].group == "canary");
  CHECK((*stages)[1].percent == 1);
  CHECK((*stages)[4].percent == 100);
  CHECK(parse_rollout_stages("0.5,5").ok());
  CHECK_FALSE(parse_rollout_stages("10,5").ok());    // falling
  CHECK_FALSE(parse_rollout_stages("0,10").ok());    // zero admits no one
  CHECK_FALSE(parse_rollout_stages("150").ok());
  CHECK_FALSE(parse_rollout_stages("Canary!").ok());
  CHECK_FALSE(parse_rollout_stages("").ok());
}

TEST_CASE("a rollout document round-trips, and a malformed one is refused naming the field") {
  Rollout rollout;
  rollout.model = "cnn";
  rollout.version = 12;
  rollout.stages = {{0, "canary", {random_device_key()}}, {10, "", {}}};
  rollout.stage = 1;
  rollout.soak_s = 3600;
  rollout.stage_started = 1'800'000'000;
  const std::string text = to_json(rollout).dump();
  auto parsed = parse_rollout(bytes_of(text), "rollout/cnn.json");
  REQUIRE(parsed.ok());
  CHECK(to_json(*parsed) == to_json(rollout));

  for (const auto& [edit, field] : std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>>{
           {[](nlohmann::json& doc) { doc["stage"] = 2; }, "past the last stage"},
           {[](nlohmann::json& doc) { doc["state"] = "paused"; }, "state 'paused'"},
           {[](nlohmann::json& doc) { doc["stages"][1]["percent"] = 101; }, "stages[1].percent"},
           {[](nlohmann::json& doc) { doc["stages"][0]["devices"] = {"not hex"}; }, "stages[0].devices"},
           {[](nlohmann::json& doc) { doc.erase("version"); }, "version"},
       }) {
    auto document = to_json(rollout);
    edit(document);
    auto refused = parse_rollout(bytes_of(document.dump()), "rollout/cnn.json");
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error().message, Catch::Contains(field));
  }
}

TEST_CASE("percentage stages admit about that share of devices, each stage those of the stages before") {
  Rollout rollout;
  rollout.model = "cnn";
  rollout.stages = {{1, "", {}}, {10, "", {}}, {100, "", {}}};
  std::size_t in_1 = 0, in_10 = 0;
  constexpr int kDevices = 4000;
  for (int i = 0; i < kDevices; ++i) {
    const std::string key = random_device_key();
    CHECK(rollout_bucket("cnn", key) == rollout_bucket("cnn", key));  // stable
    rollout.stage = 0;
    const bool first = rollout_admits(rollout, key);
    rollout.stage = 1;
    const bool second = rollout_admits(rollout, key);
    if (first) CHECK(second);  // stages accumulate
    in_1 += first;
    in_10 += second;
    rollout.stage = 2;
    CHECK(rollout_admits(rollout, key));
  }
  // Binomial: 400 ± 19 for 10%, 40 ± 6 for 1%; the bounds are over 5 sigma wide.
  CHECK(in_10 > 300);
  CHECK(in_10 < 500);
  CHECK(in_1 > 10);
  CHECK(in_1 < 80);
  // A device without a key is only in a 100% stage.
  rollout.stage = 1;
  CHECK_FALSE(rollout_admits(rollout, ""));
  rollout.state = RolloutState::halted;
  rollout.stage = 2;
  CHECK_FALSE(rollout_admits(rollout, random_device_key()));
}

TEST_CASE("devices outside the stage keep the version before, and a halt rolls back those that took it") {
  RolloutFixture fixture;
  const std::string canary = random_device_key();
  // Two devices the 1% stage leaves out, for certain: found by their buckets.
  std::vector<std::string> outside;
  while (outside.size() < 2) {
    auto key = random_device_key();
    if (rollout_bucket("cnn", key) >= 100) outside.push_back(key);
  }
  REQUIRE(fixture.update("canary", canary)->version == 1);
  REQUIRE(fixture.update("a", outside[0])->version == 1);

  fixture.release(fixture.repository, 2);
  auto started = start_rollout(fixture.repository, "cnn", 2, {{0, "canary", {canary}}, {1, "", {}}, {100, "", {}}},
                               3600, fixture.keys, fixture.now);
  REQUIRE(started.ok());

  auto canary_outcome = fixture.update("canary", canary);
  REQUIRE(canary_outcome.ok());
  CHECK(canary_outcome->installed);
  CHECK(canary_outcome->version == 2);
  auto held = fixture.update("a", outside[0]);
  REQUIRE(held.ok());
  CHECK_FALSE(held->installed);
  CHECK(held->outside_rollout);
  CHECK(held->version == 1);
  // A new device outside the stage installs the version before the rollout's.
  auto fresh = fixture.update("b", outside[1]);
  REQUIRE(fresh.ok());
  CHECK(fresh->version == 1);

  // Advancing needs the soak, or --force.
  auto early = advance_rollout(fixture.repository, "cnn", false, fixture.keys, fixture.now + 60);
  REQUIRE_FALSE(early.ok());
  CHECK_THAT(early.error().message, Catch::Contains("has run 60 s of its 3600 s soak"));

  auto halted = halt_rollout(fixture.repository, "cnn", "smoke tests failing", fixture.keys, fixture.now);
  REQUIRE(halted.ok());
  auto rolled = fixture.update("canary", canary);
  REQUIRE(rolled.ok());
  CHECK(rolled->halted_rollback == std::optional<std::uint64_t>(2));
  CHECK(rolled->version == 1);
  CHECK(fixture.update("a", outside[0])->version == 1);
  CHECK_FALSE(advance_rollout(fixture.repository, "cnn", true, fixture.keys, fixture.now).ok());

  // The status an operator reads.
  auto current = current_rollout(fixture.repository, "cnn");
  REQUIRE(current.ok());
  REQUIRE(*current);
  CHECK_THAT(describe_rollout(**current, fixture.now), Catch::Contains("halted (smoke tests failing)"));
}

TEST_CASE("an advanced rollout reaches more devices, and a complete one all of them") {
  RolloutFixture fixture;
  std::vector<std::string> devices;
  for (int i = 0; i < 40; ++i) devices.push_back(random_device_key());
  fixture.release(fixture.repository, 2);
  REQUIRE(start_rollout(fixture.repository, "cnn", 2, {{1, "", {}}, {50, "", {}}}, 0, fixture.keys, fixture.now).ok());
  auto count_on_2 = [&]() {
    int on_2 = 0;
    for (std::size_t i = 0; i < devices.size(); ++i) {
      auto outcome = fixture.update("device-" + std::to_string(i), devices[i]);
      REQUIRE(outcome.ok());
      on_2 += outcome->version == 2;
    }
    return on_2;
  };
  int expected_first = 0, expected_second = 0;
  for (const auto& key : devices) {
    expected_first += rollout_bucket("cnn", key) < 100;
    expected_second += rollout_bucket("cnn", key) < 5000;
  }
  CHECK(count_on_2() == expected_first);
  REQUIRE(advance_rollout(fixture.repository, "cnn", false, fixture.keys, fixture.now).ok());
  CHECK(count_on_2() == expected_second);
  auto complete = advance_rollout(fixture.repository, "cnn", false, fixture.keys, fixture.now);
  REQUIRE(complete.ok());
  CHECK(complete->state == RolloutState::complete);
  CHECK(count_on_2() == static_cast<int>(devices.size()));
}

TEST_CASE("a rollout is signed by the rollout role: a document signed by another key is refused") {
  RolloutFixture fixture;
  fixture.release(fixture.repository, 2);
  const auto stranger = crypto::IdentityKeyPair::generate();
  OnlineKeys wrong{&stranger, &fixture.snapshot_key, &fixture.timestamp_key};
  auto refused = start_rollout(fixture.repository, "cnn", 2, {{1, "", {}}}, 0, wrong, fixture.now);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("is not one of the keys targets delegates role 'rollout' to"));
  CHECK_FALSE(start_rollout(fixture.repository, "cnn", 9, {{1, "", {}}}, 0, fixture.keys, fixture.now).ok());

  // An attacker with the online snapshot and timestamp keys, not the rollout key, edits the document.
  REQUIRE(start_rollout(fixture.repository, "cnn", 2, {{1, "", {}}}, 0, fixture.keys, fixture.now).ok());
  const std::string device = random_device_key();
  const fs::path document = fixture.repo_dir / "targets" / "rollout" / "cnn.json";
  auto text = base::read_file(document, 1 << 20);
  REQUIRE(text.ok());
  auto edited = nlohmann::json::parse(*text);
  edited["state"] = "complete";
  std::ofstream(document, std::ios::trunc) << edited.dump();  // the hard-linked hash name changes too
  auto outcome = fixture.update("device", device);
  REQUIRE_FALSE(outcome.ok());
  CHECK_THAT(outcome.error().message, Catch::Contains("rollout/cnn.json"));
}

TEST_CASE("health: failures and accuracy are counted per device for the version it tried") {
  RolloutHealth health;
  Rollout rollout;
  rollout.model = "cnn";
  rollout.version = 2;
  rollout.stages = {{10, "", {}}};
  RolloutPolicy policy;
  policy.min_reports = 4;
  policy.max_failure_share = 0.2;
  policy.min_accuracy_devices = 3;
  policy.max_accuracy_drop = 0.05;
  auto report = [&](int device, std::uint64_t active, std::uint64_t previous, std::uint64_t attempted,
                    std::string failed_step, std::optional<double> accuracy) {
    HealthReport r;
    r.device = "device-" + std::to_string(device);
    r.model = "cnn";
    r.active_version = active;
    r.previous_version = previous;
    r.attempted_version = attempted;
    r.failed_step = std::move(failed_step);
    r.accuracy = accuracy;
    r.accuracy_samples = accuracy ? 100 : 0;
    health.on_report(r);
  };
  for (int device = 0; device < 4; ++device) report(device, 1, 0, 0, "", 0.80);  // all on version 1
  report(0, 2, 1, 2, "", 0.81);
  report(1, 2, 1, 2, "", 0.80);
  report(2, 1, 0, 2, "smoke test", std::nullopt);  // tried 2, failed, still runs 1
  CHECK(health.health("cnn", 2).tried == 3);
  CHECK(health.health("cnn", 2).failed == 1);
  CHECK_FALSE(health.halt_reason(rollout, policy));  // 3 reports, 4 needed
  report(3, 2, 1, 2, "", 0.79);
  CHECK(health.health("cnn", 2).tried == 4);
  CHECK(health.health("cnn", 2).running == 3);
  CHECK(health.health("cnn", 2).accuracy_pairs == 3);
  auto reason = health.halt_reason(rollout, policy);  // 1 of 4 failed: 25% > 20%
  REQUIRE(reason);
  CHECK_THAT(*reason, Catch::Contains("1 of 4 devices failed version 2 (25.0%"));
  policy.max_failure_share = 0.3;
  CHECK_FALSE(health.halt_reason(rollout, policy));  // accuracy held: +0.0 on average

  // Accuracy falls on the devices that run version 2.
  for (int device : {0, 1, 3}) report(device, 2, 1, 0, "", 0.70);
  reason = health.halt_reason(rollout, policy);
  REQUIRE(reason);
  CHECK_THAT(*reason, Catch::Contains("held-out accuracy fell by 10.0% on 3 devices"));
  rollout.state = RolloutState::halted;
  CHECK_FALSE(health.halt_reason(rollout, policy));  // halted already
}

TEST_CASE("health: reports on more models than the cap are not kept, so a device cannot grow the monitor without bound") {
  RolloutHealth health;
  HealthReport report;
  report.device = "device-0";
  report.active_version = 1;
  for (std::size_t i = 0; i < RolloutHealth::kMaxModels; ++i) {
    report.model = "model-" + std::to_string(i);
    CHECK(health.on_report(report));
  }
  report.model = "one-too-many";
  CHECK_FALSE(health.on_report(report));
  CHECK(health.health("one-too-many", 1).running == 0);
  report.model = "model-0";
  CHECK(health.on_report(report));  // a model already tracked still is
  CHECK(health.devices() == RolloutHealth::kMaxModels);
}
