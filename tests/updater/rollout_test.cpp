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

TEST_CASE("a staged rollout to 1,000 devices where 5% fail the smoke test halts in the first stage, and those that installed roll back") {
  RolloutFixture fixture;
  // Every device runs version 1: one installs it, the others start from a copy of its state.
  const std::string template_device = "template";
  REQUIRE(fixture.update(template_device, random_device_key())->version == 1);
  constexpr int kDevices = 1000;
  struct Device {
    std::string name, key;
    bool fails_smoke_test = false;
  };
  std::vector<Device> fleet;
  for (int i = 0; i < kDevices; ++i) {
    fleet.push_back({"device-" + std::to_string(i), random_device_key()});
    fs::copy(fixture.temp / template_device, fixture.temp / fleet.back().name, fs::copy_options::recursive);
  }
  // 5% of the fleet fails, spread evenly over the rollout buckets (every 20th in bucket order).
  std::vector<Device*> by_bucket;
  for (auto& device : fleet) by_bucket.push_back(&device);
  std::sort(by_bucket.begin(), by_bucket.end(), [](const Device* a, const Device* b) {
    return rollout_bucket("cnn", a->key) < rollout_bucket("cnn", b->key);
  });
  for (std::size_t i = 0; i < by_bucket.size(); i += 20) by_bucket[i]->fails_smoke_test = true;

  fixture.release(fixture.repository, 2);
  auto rollout = start_rollout(fixture.repository, "cnn", 2, {{10, "", {}}, {50, "", {}}, {100, "", {}}}, 3600,
                               fixture.keys, fixture.now);
  REQUIRE(rollout.ok());
  RolloutHealth health;
  RolloutPolicy policy;  // more than 2% failing of at least 20 devices halts
  auto update_and_report = [&](Device& device) -> InstallOutcome {
    auto outcome = fixture.update(device.name, device.key, [&](const weights::Weights&) -> Status {
      if (device.fails_smoke_test) return make_error(ErrorCode::verification, "probe output is NaN");
      return ok_status();
    });
    HealthReport report;
    report.device = device.key;
    report.model = "cnn";
    if (outcome.ok()) {
      report.event = outcome->installed ? HealthEvent::install
                     : outcome->halted_rollback ? HealthEvent::rollback
                                                : HealthEvent::periodic;
      report.active_version = outcome->version;
      report.previous_version = outcome->previous_version.value_or(0);
      if (outcome->installed) report.attempted_version = outcome->version;
      if (outcome->installed) report.smoke_test = SmokeTest::passed;
    } else {
      CHECK_THAT(outcome.error().message, Catch::Contains("install step 'smoke test'"));
      report.event = HealthEvent::install;
      report.active_version = 1;
      report.attempted_version = 2;
      report.failed_step = "smoke test";
      report.smoke_test = SmokeTest::failed;
    }
    health.on_report(report);
    return outcome.ok() ? *outcome : InstallOutcome{};
  };

  // The first stage: about 100 devices try version 2, about 5 of them fail.
  std::size_t installed = 0, failed = 0, held = 0;
  std::vector<Device*> on_version_2;
  for (auto& device : fleet) {
    const bool admitted = rollout_admits(*rollout, device.key);
    auto outcome = update_and_report(device);
    if (!admitted) {
      held += outcome.outside_rollout && outcome.version == 1;
    } else if (device.fails_smoke_test) {
      ++failed;
    } else {
      installed += outcome.installed && outcome.version == 2;
      on_version_2.push_back(&device);
    }
  }
  REQUIRE(installed > 50);
  CHECK(installed == on_version_2.size());
  CHECK(failed >= 3);
  CHECK(held + installed + failed == kDevices);
  const VersionHealth seen = health.health("cnn", 2);
  CHECK(seen.tried == installed + failed);
  CHECK(seen.failed == failed);

  // The monitor halts the rollout in its first stage, through the rollout role.
  auto reason = health.halt_reason(*rollout, policy);
  REQUIRE(reason);
  CHECK_THAT(*reason, Catch::Contains("devices failed version 2"));
  auto halted = halt_rollout(fixture.repository, "cnn", *reason, fixture.keys, fixture.now + 60);
  REQUIRE(halted.ok());
  CHECK(halted->stage == 0);
  CHECK(halted->state == RolloutState::halted);

  // At their next check the devices that installed version 2 roll back; no device runs it afterwards.
  std::size_t rolled_back = 0;
  for (auto& device : fleet) {
    auto outcome = update_and_report(device);
    CHECK(outcome.version == 1);
    rolled_back += outcome.halted_rollback == std::optional<std::uint64_t>(2);
  }
  CHECK(rolled_back == installed);
  CHECK(health.health("cnn", 2).running == 0);
}
