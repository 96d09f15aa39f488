// The TUF client against the attacks the TUF reference tests name. Each
// test publishes a good repository, lets the device install from it, then
// plays the attacker by rewriting files in the repository, and checks that
// the device refuses with a clear error and keeps its active model.
#include "shoal/updater/tuf_client.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>

#include "fault_sweep.h"
#include "release_fixture.h"

using namespace shoal;
using namespace shoal::updater;
using shoal::testing::ReleaseFixture;
namespace fs = std::filesystem;

namespace {

// A repository with version 1 installed on the device and version 2 published.
struct InstalledFixture : ReleaseFixture {
  ReleaseRepository repository = make_repository();
  InstalledFixture() {
    release(repository, 1);
    trust_first_root();
    REQUIRE(install().ok());
    REQUIRE(active_version() == 1);
    release(repository, 2);
  }

  // Installs, expecting a refusal whose message contains `expected`, and
  // checks the device still runs version 1.
  void expect_refusal(const std::string& expected) {
    auto outcome = install();
    REQUIRE_FALSE(outcome.ok());
    CHECK_THAT(outcome.error().message, Catch::Contains(expected));
    CHECK(active_version() == 1);
  }

  void overwrite_target(const std::string& path, const std::string& bytes) {
    std::ofstream(repo_dir / "targets" / path, std::ios::binary | std::ios::trunc) << bytes;
  }
};

std::string target_bytes(const ReleaseFixture& fixture, const std::string& path) {
  return base::read_file(fixture.repo_dir / "targets" / path, 1 << 24).value();
}

}  // namespace

TEST_CASE("the device follows a good repository and installs the newest version") {
  InstalledFixture fixture;
  auto outcome = fixture.install();
  REQUIRE(outcome.ok());
  CHECK(outcome->installed);
  CHECK(outcome->version == 2);
  CHECK(fixture.active_version() == 2);
}

TEST_CASE("arbitrary payload: a target whose bytes differ from the signed hash is refused") {
  InstalledFixture fixture;
  std::string bytes = target_bytes(fixture, "cnn/v2.from-v1.delta");
  bytes[bytes.size() / 2] ^= 0x01;
  fixture.overwrite_target("cnn/v2.from-v1.delta", bytes);
  fixture.expect_refusal("install step 'download': target cnn/v2.from-v1.delta: sha256 is");
}

TEST_CASE("tampered metadata: an edited signed part is refused") {
  InstalledFixture fixture;
  SECTION("timestamp, whose only protection is its signature") {
    fixture.rewrite(fixture.metadata_path(RoleName::timestamp),
                    [](nlohmann::json& signed_part) { signed_part["version"] = 99; });
    fixture.expect_refusal("timestamp: metadata/timestamp.json: 0 valid signature(s) from timestamp keys");
  }
  SECTION("targets, re-chained by an attacker holding the online keys") {
    fixture.rewrite(fixture.metadata_path(RoleName::targets), [](nlohmann::json& signed_part) {
      signed_part["targets"]["cnn/v2.weights"]["length"] = 1;
    });
    fixture.rechain_with_online_keys();
    fixture.expect_refusal("targets: metadata/targets.json: 0 valid signature(s) from targets keys");
  }
}

TEST_CASE("signature threshold not met, and a signatures list naming one key twice") {
  ReleaseFixture fixture;
  const auto second_targets_key = crypto::IdentityKeyPair::generate();
  auto repository = fixture.make_repository(fixture.role_keys(&second_targets_key), {&fixture.root_key});
  REQUIRE(repository.add(ReleaseFixture::model_version(1), "cnn", 1, fixture.now).ok());
  REQUIRE(repository.sign(RoleName::targets, fixture.targets_key).ok());
  REQUIRE(repository.sign(RoleName::targets, second_targets_key).ok());
  REQUIRE(repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now).ok());
  fixture.trust_first_root();

  std::string expected;
  SECTION("one signature of two") {
    auto metadata = fixture.read_metadata(fixture.metadata_path(RoleName::targets));
    metadata.signatures.pop_back();
    fixture.write_metadata(fixture.metadata_path(RoleName::targets), metadata);
    expected = "1 valid signature(s) from targets keys of root version 1, the threshold is 2";
  }
  SECTION("one key's signature twice (TUF 1.0 §5.1: refused, not counted once)") {
    auto metadata = fixture.read_metadata(fixture.metadata_path(RoleName::targets));
    metadata.signatures[1] = metadata.signatures[0];
    fixture.write_metadata(fixture.metadata_path(RoleName::targets), metadata);
    expected = "signatures name key " + metadata.signatures[0].keyid + " twice";
  }
  fixture.rechain_with_online_keys();
  auto outcome = fixture.install();
  REQUIRE_FALSE(outcome.ok());
  CHECK_THAT(outcome.error().message, Catch::Contains(expected));
  CHECK(fixture.active_version() == 0);
}

TEST_CASE("expired metadata is refused, judged at the time the update started") {
  InstalledFixture fixture;
  SECTION("timestamp (one day)") {
    fixture.now += 24 * 3600 + 1;
    fixture.expect_refusal("metadata/timestamp.json expired at");
  }
  SECTION("root (a year): a freeze attack") {
    fixture.now += 366 * 24 * 3600;
    fixture.expect_refusal("root: root version 1 expired at");
  }
}

TEST_CASE("rollback: older timestamp, snapshot or targets than the device has seen are refused") {
  InstalledFixture fixture;
  const auto old_timestamp = fixture.read_metadata(fixture.metadata_path(RoleName::timestamp));
  const auto old_snapshot = fixture.read_metadata(fixture.metadata_path(RoleName::snapshot));
  const auto old_targets = fixture.read_metadata(fixture.metadata_path(RoleName::targets));
  REQUIRE(fixture.install().ok());
  fixture.release(fixture.repository, 3);
  REQUIRE(fixture.install().ok());  // the device has seen the third publication's metadata

  SECTION("an older timestamp, replayed") {
    fixture.write_metadata(fixture.metadata_path(RoleName::timestamp), old_timestamp);
    auto outcome = fixture.install();
    REQUIRE_FALSE(outcome.ok());
    CHECK_THAT(outcome.error().message, Catch::Contains("version 2, older than the trusted 3: a rollback"));
  }
  SECTION("an older snapshot under a fresh timestamp from the online keys") {
    fixture.write_metadata(fixture.metadata_path(RoleName::snapshot), old_snapshot);
    fixture.write_metadata(fixture.metadata_path(RoleName::targets), old_targets);
    fixture.rewrite(fixture.metadata_path(RoleName::timestamp), [&](nlohmann::json& timestamp) {
      const auto text = base::read_file(fixture.metadata_path(RoleName::snapshot), 1 << 20).value();
      timestamp["version"] = 9;
      timestamp["meta"]["snapshot.json"] = nlohmann::json{
          {"version", 2}, {"length", text.size()}, {"hashes", file_hashes(shoal::testing::bytes_of(text))}};
    }, {&fixture.timestamp_key});
    auto outcome = fixture.install();
    REQUIRE_FALSE(outcome.ok());
    CHECK_THAT(outcome.error().message, Catch::Contains("names snapshot version 2, older than the trusted 3"));
  }
  CHECK(fixture.active_version() == 3);
}

TEST_CASE("rollback: a repository started over with older metadata is refused") {
  InstalledFixture fixture;
  REQUIRE(fixture.install().ok());
  // A second repository that only knows version 1, signed by the same keys.
  std::error_code ignored;
  fs::remove_all(fixture.repo_dir, ignored);
  auto older = fixture.make_repository();
  fixture.release(older, 1);
  auto outcome = fixture.install();
  // Its metadata versions are behind what the device has seen: refused as a rollback.
  REQUIRE_FALSE(outcome.ok());
  CHECK_THAT(outcome.error().message, Catch::Contains("a rollback"));
  CHECK(fixture.active_version() == 2);
}

TEST_CASE("root rotation: consecutive versions are followed, skipped or under-signed ones are not") {
  InstalledFixture fixture;
  const auto root_2 = crypto::IdentityKeyPair::generate();
  const auto root_3 = crypto::IdentityKeyPair::generate();
  const auto new_timestamp = crypto::IdentityKeyPair::generate();
  REQUIRE(fixture.repository.rotate({{RoleName::root, RoleKeyChoice{{root_2.public_identity()}, 1}}}, fixture.now).ok());
  REQUIRE(fixture.repository.sign(RoleName::root, fixture.root_key).ok());
  REQUIRE(fixture.repository.sign(RoleName::root, root_2).ok());
  REQUIRE(fixture.repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now).ok());
  REQUIRE(fixture.repository
              .rotate({{RoleName::root, RoleKeyChoice{{root_3.public_identity()}, 1}},
                       {RoleName::timestamp, RoleKeyChoice{{new_timestamp.public_identity()}, 1}}},
                      fixture.now)
              .ok());
  REQUIRE(fixture.repository.sign(RoleName::root, root_2).ok());
  REQUIRE(fixture.repository.sign(RoleName::root, root_3).ok());
  REQUIRE(fixture.repository.publish(fixture.snapshot_key, new_timestamp, fixture.now).ok());

  SECTION("consecutive: 1 → 2 → 3, with the new timestamp key") {
    auto outcome = fixture.install();
    REQUIRE(outcome.ok());
    CHECK(outcome->version == 2);
    auto client = TufClient::open(fixture.trust_dir);
    REQUIRE(client.ok());
    CHECK(client->trusted().root.version == 3);
  }
  SECTION("skipped: without 2.root.json, root 3 is never reached and its timestamp key never trusted") {
    fs::remove(fixture.repo_dir / "metadata" / "2.root.json");
    fixture.expect_refusal("timestamp: metadata/timestamp.json: 0 valid signature(s) from timestamp keys of root version 1");
  }
  SECTION("under-signed: root 2 without the old root key's signature") {
    fixture.rewrite(fixture.repo_dir / "metadata" / "2.root.json", [](nlohmann::json&) {}, {&root_2});
    fixture.expect_refusal("root: metadata/2.root.json (by the trusted root's keys): 0 valid signature(s)");
  }
  SECTION("a root file that claims another version") {
    std::filesystem::copy_file(fixture.repo_dir / "metadata" / "3.root.json", fixture.repo_dir / "metadata" / "4.root.json");
    fixture.expect_refusal("metadata/4.root.json says it is root version 3, expected 4");
  }
}

TEST_CASE("mix-and-match: targets from one publication with a snapshot from another are refused") {
  InstalledFixture fixture;
  const auto targets_of_2 = fixture.read_metadata(fixture.metadata_path(RoleName::targets));
  fixture.release(fixture.repository, 3);
  fixture.write_metadata(fixture.metadata_path(RoleName::targets), targets_of_2);
  fixture.expect_refusal("targets: metadata/targets.json");
}

TEST_CASE("endless data: files longer than their signed or capped length are cut off") {
  InstalledFixture fixture;
  SECTION("a target") {
    fixture.overwrite_target("cnn/v2.from-v1.delta",
                             target_bytes(fixture, "cnn/v2.from-v1.delta") + std::string(1 << 20, 'x'));
    fixture.expect_refusal("is longer than the");
  }
  SECTION("the timestamp, whose length nothing signs") {
    auto metadata = fixture.read_metadata(fixture.metadata_path(RoleName::timestamp));
    std::ofstream(fixture.metadata_path(RoleName::timestamp), std::ios::trunc)
        << format_metadata_file(metadata) << std::string(100 << 10, ' ');
    fixture.expect_refusal("metadata/timestamp.json is longer than the 65536 bytes allowed");
  }
}

TEST_CASE("a trusted root must be signed by its own threshold, and is set only once") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  auto root = fixture.read_metadata(fixture.repo_dir / "metadata" / "1.root.json");
  root.signatures.clear();
  const std::string unsigned_root = format_metadata_file(root);
  auto refused = TufClient::trust_root(fixture.trust_dir, shoal::testing::bytes_of(unsigned_root), "root.json");
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("root.json: 0 valid signature(s)"));
  fixture.trust_first_root();
  const auto again = base::read_file(fixture.repo_dir / "metadata" / "1.root.json", 1 << 20).value();
  CHECK_FALSE(TufClient::trust_root(fixture.trust_dir, shoal::testing::bytes_of(again), "root.json").ok());
}

TEST_CASE("snapshot and targets whose versions did not change are not downloaded again") {
  InstalledFixture fixture;
  auto client = TufClient::open(fixture.trust_dir);
  REQUIRE(client.ok());
  shoal::testing::CountingFetcher first(fixture.repo_dir);
  REQUIRE(client->refresh(first, fixture.now).ok());  // version 2 is new: all of it comes
  CHECK(std::count(first.fetched.begin(), first.fetched.end(), "metadata/snapshot.json") == 1);
  CHECK(std::count(first.fetched.begin(), first.fetched.end(), "metadata/targets.json") == 1);

  // Nothing published since: the timestamp names the kept snapshot, which names the kept targets.
  auto reopened = TufClient::open(fixture.trust_dir);
  REQUIRE(reopened.ok());
  shoal::testing::CountingFetcher again(fixture.repo_dir);
  auto targets = reopened->refresh(again, fixture.now);
  REQUIRE(targets.ok());
  CHECK(targets->targets.size() == client->trusted().targets->targets.size());
  CHECK(again.fetched == std::vector<std::string>{"metadata/2.root.json", "metadata/timestamp.json"});

  // A kept snapshot that was damaged on disk is downloaded again, not trusted.
  std::ofstream(fixture.trust_dir / "snapshot.json", std::ios::app) << " ";
  shoal::testing::CountingFetcher repaired(fixture.repo_dir);
  REQUIRE(reopened->refresh(repaired, fixture.now).ok());
  CHECK(std::count(repaired.fetched.begin(), repaired.fetched.end(), "metadata/snapshot.json") == 1);
}

// Version 1 installed, version 2 published; each round of the sweep starts
// from a copy of the device's state (trusted metadata and models) as it was.
struct FaultSweepFixture : InstalledFixture {
  fs::path saved = temp / "saved-device";
  FaultSweepFixture() { fs::copy(temp / "device", saved, fs::copy_options::recursive); }
  void restore() {
    fs::remove_all(temp / "device");
    fs::copy(saved, temp / "device", fs::copy_options::recursive);
  }
  // What a restarted device trusts: its metadata loads and is never older than before.
  void check_trusted_after_restart() {
    auto client = TufClient::open(trust_dir);
    REQUIRE(client);
    REQUIRE(client->trusted().timestamp);
    CHECK(client->trusted().timestamp->version >= 1);
    REQUIRE(client->trusted().targets);
    CHECK(client->trusted().targets->version >= 1);
  }
};

TEST_CASE("a crash between any two disk operations of an update leaves trusted metadata and a model that load") {
  FaultSweepFixture fixture;
  auto write = [&](base::Env& env) -> Status {
    auto outcome = fixture.install({}, env);
    if (!outcome) return outcome.error();
    return ok_status();
  };
  shoal::testing::crash_sweep([&] { fixture.restore(); }, write, [&](std::size_t, std::size_t, bool succeeded) {
    fixture.check_trusted_after_restart();
    const auto version = fixture.active_version();
    CHECK((version == 1 || version == 2));
    if (succeeded) CHECK(version == 2);
    // The restarted device's next update goes through.
    auto again = fixture.install();
    REQUIRE(again);
    CHECK(fixture.active_version() == 2);
  });
}

TEST_CASE("ENOSPC or EIO anywhere in an update is reported and leaves trusted metadata and a model that load") {
  FaultSweepFixture fixture;
  std::string message;
  auto write = [&](base::Env& env) -> Status {
    auto outcome = fixture.install({}, env);
    message = outcome ? "" : outcome.error().message;
    if (!outcome) return outcome.error();
    return ok_status();
  };
  shoal::testing::failure_sweep([&] { fixture.restore(); }, write, [&](std::size_t, int error_number, bool succeeded) {
    fixture.check_trusted_after_restart();
    const auto version = fixture.active_version();
    CHECK((version == 1 || version == 2));
    if (!succeeded) CHECK_THAT(message, Catch::Contains(std::strerror(error_number)));
    if (version == 1) CHECK_FALSE(succeeded);
    REQUIRE(fixture.install());
    CHECK(fixture.active_version() == 2);
  });
}
