// Consistent snapshots and delegated targets roles (TUF 1.0 §5.6.7), as
// shoal-release publishes them and the device's client reads them. The test
// names follow the rules of the specification.
#include <catch2/catch.hpp>

#include <fstream>

#include "release_fixture.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/hash.h"
#include "shoal/updater/tuf_client.h"

using namespace shoal;
using namespace shoal::updater;
using shoal::testing::bytes_of;
using shoal::testing::CountingFetcher;
using shoal::testing::ReleaseFixture;
namespace fs = std::filesystem;

namespace {

struct ConsistentFixture : ReleaseFixture {
  ConsistentFixture() { consistent_snapshot = true; }
};

// A repository whose targets delegates to roles a test sets up, with the
// device trusting its root.
struct DelegationFixture : ConsistentFixture {
  ReleaseRepository repository = make_repository();
  std::map<std::string, crypto::IdentityKeyPair> role_keys_by_name;

  DelegationFixture() {
    release(repository, 1);
    trust_first_root();
  }

  const crypto::IdentityKeyPair& key_of(const std::string& role) {
    return role_keys_by_name.try_emplace(role, crypto::IdentityKeyPair::generate()).first->second;
  }

  void delegate(const std::string& delegator, const std::string& role, std::vector<std::string> paths,
                bool terminating = false, std::vector<std::string> prefixes = {}) {
    DelegationChoice choice;
    choice.name = role;
    choice.keys = {key_of(role).public_identity()};
    choice.terminating = terminating;
    choice.paths = std::move(paths);
    choice.path_hash_prefixes = std::move(prefixes);
    REQUIRE(repository.delegate(choice, delegator, now).ok());
  }

  void add(const std::string& role, const std::string& path, const std::string& bytes) {
    REQUIRE(repository.add_target(role, path, bytes_of(bytes), nlohmann::json::object(), now).ok());
  }

  // Signs every role with its key and publishes.
  void publish() {
    REQUIRE(repository.sign(RoleName::targets, targets_key).ok());
    for (const auto& [name, file] : repository.staged_delegated_files()) {
      REQUIRE(repository.sign_delegated(name, key_of(name)).ok());
    }
    REQUIRE(repository.publish(snapshot_key, timestamp_key, now).ok());
  }

  TufClient refreshed_client(RepositoryFetcher& fetcher, DownloadLimits limits = {}) {
    auto client = TufClient::open(trust_dir, limits);
    REQUIRE(client.ok());
    REQUIRE(client->refresh(fetcher, now).ok());
    return std::move(client).value();
  }

  // The role that signs `path`, or "" if none does.
  std::string signer_of(const std::string& path, DownloadLimits limits = {}) {
    CountingFetcher fetcher(repo_dir);
    auto client = refreshed_client(fetcher, limits);
    auto found = client.find_target(fetcher, path, now);
    REQUIRE(found.ok());
    return *found ? (*found)->role : "";
  }
};

}  // namespace

TEST_CASE("consistent snapshots: the device fetches versioned metadata and hash-prefixed targets") {
  ConsistentFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  fixture.release(repository, 2);
  CHECK(repository.staged_root().consistent_snapshot);
  fixture.trust_first_root();

  CountingFetcher fetcher(fixture.repo_dir);
  auto client = TufClient::open(fixture.trust_dir);
  REQUIRE(client.ok());
  auto targets = client->refresh(fetcher, fixture.now);
  REQUIRE(targets.ok());
  CHECK(fetcher.count("metadata/2.snapshot.json") == 1);
  CHECK(fetcher.count("metadata/2.targets.json") == 1);
  CHECK(fetcher.count("metadata/snapshot.json") == 0);
  CHECK(fetcher.count("metadata/targets.json") == 0);

  const std::string path = "cnn/v2.weights";
  const TargetFile& target = targets->targets.at(path);
  auto bytes = client->download_target(fetcher, path, target);
  REQUIRE(bytes.ok());
  CHECK(fetcher.fetched.back() == "targets/cnn/" + target.hashes.at("sha256") + ".v2.weights");
  // The hash-named file is the same file, not a second copy.
  CHECK(fs::equivalent(fixture.repo_dir / "targets" / path, fixture.repo_dir / "targets" / "cnn" /
                                                                 (target.hashes.at("sha256") + ".v2.weights")));
}

TEST_CASE("consistent snapshots: a mirror half-way through copying the next publication still serves the last one") {
  ConsistentFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  const auto timestamp_1 = base::read_file(fixture.metadata_path(RoleName::timestamp), 1 << 20).value();
  fixture.release(repository, 2);
  // The mirror has the new snapshot, targets and target files, not yet the new timestamp.
  REQUIRE(base::write_file_durably(fixture.metadata_path(RoleName::timestamp), timestamp_1).ok());
  fixture.trust_first_root();
  auto outcome = fixture.install();
  REQUIRE(outcome.ok());
  CHECK(outcome->version == 1);  // publication 1, whole

  fixture.release(repository, 3);  // the copy completes
  outcome = fixture.install();
  REQUIRE(outcome.ok());
  CHECK(outcome->version == 3);
}

TEST_CASE("consistent snapshots: a tampered versioned file is refused like any other") {
  ConsistentFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  fixture.trust_first_root();
  fixture.rewrite(fixture.repo_dir / "metadata" / "1.targets.json",
                  [](nlohmann::json& targets) { targets["expires"] = "2099-01-01T00:00:00Z"; });
  auto outcome = fixture.install();
  REQUIRE_FALSE(outcome.ok());
  CHECK_THAT(outcome.error().message, Catch::Contains("metadata/1.targets.json"));
}

TEST_CASE("5.6.7: a target signed by a delegated role is found and downloaded, its metadata kept") {
  DelegationFixture fixture;
  fixture.delegate("targets", "team", {"team/*"});
  fixture.add("team", "team/notes.txt", "release notes");
  fixture.publish();

  CountingFetcher fetcher(fixture.repo_dir);
  auto client = fixture.refreshed_client(fetcher);
  CHECK(fetcher.count("metadata/1.team.json") == 0);  // delegated roles come when a lookup reaches them
  auto found = client.find_target(fetcher, "team/notes.txt", fixture.now);
  REQUIRE(found.ok());
  REQUIRE(*found);
  CHECK((*found)->role == "team");
  CHECK(fetcher.count("metadata/1.team.json") == 1);
  auto bytes = client.download_target(fetcher, "team/notes.txt", (*found)->file);
  REQUIRE(bytes.ok());
  CHECK(std::string(bytes->begin(), bytes->end()) == "release notes");
  CHECK(fs::exists(fixture.trust_dir / "team.json"));

  // Unchanged: the kept copy is used on the next refresh.
  CountingFetcher again(fixture.repo_dir);
  auto client_again = fixture.refreshed_client(again);
  REQUIRE(client_again.find_target(again, "team/notes.txt", fixture.now).ok());
  CHECK(again.count("metadata/1.team.json") == 0);
}

TEST_CASE("5.6.7.1: a delegated role must meet its delegator's threshold and the snapshot's version") {
  DelegationFixture fixture;
  fixture.delegate("targets", "team", {"team/*"});
  fixture.add("team", "team/a.txt", "a");
  fixture.publish();
  const fs::path role_file = fixture.repo_dir / "metadata" / "1.team.json";

  SECTION("signed by another key") {
    const auto stranger = crypto::IdentityKeyPair::generate();
    fixture.rewrite(role_file, [](nlohmann::json&) {}, {&stranger});
  }
  SECTION("a version other than the snapshot lists") {
    const auto& key = fixture.key_of("team");
    fixture.rewrite(role_file, [](nlohmann::json& signed_part) { signed_part["version"] = 7; }, {&key});
  }
  CountingFetcher fetcher(fixture.repo_dir);
  auto client = fixture.refreshed_client(fetcher);
  auto found = client.find_target(fetcher, "team/a.txt", fixture.now);
  REQUIRE_FALSE(found.ok());
  CHECK_THAT(found.error().message, Catch::Contains("delegated role 'team'"));
  CHECK_FALSE(fs::exists(fixture.trust_dir / "team.json"));
}

TEST_CASE("5.6.7.2: roles are searched pre-order depth first, in the order they are listed") {
  DelegationFixture fixture;
  fixture.delegate("targets", "first", {"shared/*"});
  fixture.delegate("first", "first-child", {"shared/*"});
  fixture.delegate("targets", "second", {"shared/*"});
  fixture.add("first-child", "shared/x", "from the first's child");
  fixture.add("second", "shared/x", "from the second");
  fixture.add("second", "shared/y", "only the second");
  fixture.publish();
  CHECK(fixture.signer_of("shared/x") == "first-child");  // depth before breadth
  CHECK(fixture.signer_of("shared/y") == "second");
}

TEST_CASE("5.6.7.2.1: a terminating delegation that matches ends the search") {
  DelegationFixture fixture;
  fixture.delegate("targets", "closed", {"models/*"}, /*terminating=*/true);
  fixture.delegate("targets", "later", {"models/*", "other"});
  fixture.add("closed", "models/a", "a");
  fixture.add("later", "models/b", "b");
  fixture.add("later", "other", "not under the terminating delegation");
  fixture.publish();
  CHECK(fixture.signer_of("models/a") == "closed");
  CHECK(fixture.signer_of("models/b").empty());      // hidden behind the terminating role
  CHECK(fixture.signer_of("other") == "later");      // the terminating role does not match it
}

TEST_CASE("5.6.7.2: path patterns match segment by segment, and * and ? do not cross /") {
  CHECK(path_pattern_matches("models/*", "models/cnn"));
  CHECK(path_pattern_matches("models/*.bin", "models/a.bin"));
  CHECK(path_pattern_matches("v?/x", "v1/x"));
  CHECK(path_pattern_matches("*", "anything"));
  CHECK(path_pattern_matches("a/*/c", "a/b/c"));
  CHECK_FALSE(path_pattern_matches("models/*", "models/cnn/v1"));
  CHECK_FALSE(path_pattern_matches("*", "a/b"));
  CHECK_FALSE(path_pattern_matches("v?/x", "v10/x"));
  CHECK_FALSE(path_pattern_matches("models/*.bin", "models/a.txt"));
  CHECK_FALSE(path_pattern_matches("a/b", "a/b/"));

  DelegationFixture fixture;
  fixture.delegate("targets", "flat", {"docs/*.txt"});
  fixture.add("flat", "docs/a.txt", "a");
  REQUIRE_FALSE(fixture.repository.add_target("flat", "docs/sub/b.txt", bytes_of("b"), {}, fixture.now).ok());
  fixture.publish();
  CHECK(fixture.signer_of("docs/a.txt") == "flat");
}

TEST_CASE("5.6.7.2: a role delegated by path hash prefix signs the paths whose SHA-256 starts with it") {
  DelegationFixture fixture;
  const std::string path = "bins/blob";
  const std::string hash = crypto::to_hex(crypto::sha256(bytes_of(path)));
  fixture.delegate("targets", "bin-" + hash.substr(0, 2), {}, false, {hash.substr(0, 2)});
  const std::string other_prefix = hash[0] == '0' ? "1" : "0";
  fixture.delegate("targets", "bin-other", {}, false, {other_prefix});
  fixture.add("bin-" + hash.substr(0, 2), path, "blob");
  fixture.publish();
  CHECK(fixture.signer_of(path) == "bin-" + hash.substr(0, 2));
  DelegatedRole role;
  role.path_hash_prefixes = {other_prefix};
  CHECK_FALSE(delegated_role_matches(role, path));
}

TEST_CASE("5.6.7.2: a delegation cycle is visited once, and at most max_delegations roles are visited") {
  DelegationFixture fixture;
  fixture.delegate("targets", "a", {"*"});
  fixture.delegate("a", "b", {"*"});
  fixture.delegate("b", "a", {"*"});  // back to a: visited already
  fixture.delegate("b", "c", {"*"});
  fixture.add("c", "deep", "found three levels down");
  fixture.publish();
  CHECK(fixture.signer_of("deep") == "c");
  CHECK(fixture.signer_of("missing").empty());  // the cycle ends
  DownloadLimits limits;
  limits.max_delegations = 3;  // targets, a, b: c is not reached
  CHECK(fixture.signer_of("deep", limits).empty());
}

TEST_CASE("delegated role names are percent-encoded in file names and URLs") {
  CHECK(encode_role_name("team-a_1.x~") == "team-a_1.x~");
  CHECK(encode_role_name("a/b") == "a%2Fb");
  CHECK(encode_role_name("../x") == "..%2Fx");
  CHECK(encode_role_name("sp ace%") == "sp%20ace%25");

  DelegationFixture fixture;
  fixture.delegate("targets", "../escape", {"up/*"});
  fixture.add("../escape", "up/x", "x");
  fixture.publish();
  CHECK(fs::exists(fixture.repo_dir / "metadata" / "..%2Fescape.json"));
  CHECK(fixture.signer_of("up/x") == "../escape");
  CHECK(fs::exists(fixture.trust_dir / "..%2Fescape.json"));
  CHECK_FALSE(fs::exists(fixture.trust_dir.parent_path() / "escape.json"));
}

TEST_CASE("shoal-release delegate: bad delegations and signatures are refused, and publish needs every role signed") {
  DelegationFixture fixture;
  DelegationChoice choice;
  choice.name = "snapshot";
  choice.keys = {fixture.key_of("x").public_identity()};
  choice.paths = {"x/*"};
  CHECK_FALSE(fixture.repository.delegate(choice, "targets", fixture.now).ok());  // a top-level name
  choice.name = "x";
  choice.path_hash_prefixes = {"ab"};
  CHECK_FALSE(fixture.repository.delegate(choice, "targets", fixture.now).ok());  // paths and prefixes both
  choice.path_hash_prefixes.clear();
  CHECK_FALSE(fixture.repository.delegate(choice, "nobody", fixture.now).ok());  // no such delegator

  fixture.delegate("targets", "team", {"team/*"});
  fixture.add("team", "team/a", "a");
  const auto stranger = crypto::IdentityKeyPair::generate();
  auto refused = fixture.repository.sign_delegated("team", stranger);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("is not one of the keys targets delegates role 'team' to"));
  REQUIRE(fixture.repository.sign(RoleName::targets, fixture.targets_key).ok());
  auto unsigned_publish = fixture.repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now);
  REQUIRE_FALSE(unsigned_publish.ok());
  CHECK_THAT(unsigned_publish.error().message, Catch::Contains("staged team: 0 valid signature(s)"));

  // Reopened from disk, the staged delegation is all there.
  auto reopened = ReleaseRepository::open(fixture.repo_dir);
  REQUIRE(reopened.ok());
  REQUIRE(reopened->delegation_of("team"));
  CHECK(reopened->delegation_of("team")->first == "targets");
  CHECK(reopened->staged_delegated_files().contains("team"));
}

TEST_CASE("a role once listed in the snapshot stays listed, so devices accept later snapshots") {
  DelegationFixture fixture;
  fixture.delegate("targets", "team", {"team/*"});
  fixture.add("team", "team/a", "a");
  fixture.publish();
  REQUIRE(fixture.signer_of("team/a") == "team");
  fixture.release(fixture.repository, 2);  // a later publication
  auto outcome = fixture.install();
  REQUIRE(outcome.ok());
  CHECK(outcome->version == 2);
  auto snapshot = fixture.read_metadata(fixture.repo_dir / "metadata" / "snapshot.json");
  CHECK(snapshot.signed_part["meta"].contains("team.json"));
}

TEST_CASE("a targets file with a malformed delegation is refused, naming the field") {
  const nlohmann::json role{{"name", "team"},
                            {"keyids", nlohmann::json::array()},
                            {"threshold", 1},
                            {"terminating", false},
                            {"paths", {"team/*"}}};
  auto targets_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json signed_part{{"_type", "targets"},
                               {"spec_version", "1.0.31"},
                               {"version", 1},
                               {"expires", "2099-01-01T00:00:00Z"},
                               {"targets", nlohmann::json::object()},
                               {"delegations", {{"keys", nlohmann::json::object()}, {"roles", {role}}}}};
    edit(signed_part);
    return parse_targets(signed_part, "targets.json");
  };
  CHECK(targets_with([](nlohmann::json&) {}).ok());
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases{
      {[](nlohmann::json& t) { t["delegations"]["roles"][0]["path_hash_prefixes"] = {"ab"}; },
       "must have exactly one of paths and path_hash_prefixes"},
      {[](nlohmann::json& t) { t["delegations"]["roles"][0]["name"] = "root"; }, "is a top-level role's name"},
      {[&](nlohmann::json& t) { t["delegations"]["roles"].push_back(role); }, "is delegated twice"},
      {[](nlohmann::json& t) { t["delegations"]["roles"][0]["keyids"] = {"00"}; }, "not in keys"},
      {[](nlohmann::json& t) { t["delegations"]["roles"][0].erase("terminating"); }, "terminating"},
      {[](nlohmann::json& t) { t["delegations"]["roles"][0]["paths"] = {7}; }, "paths must hold strings"},
      {[](nlohmann::json& t) {
         t["delegations"]["roles"][0].erase("paths");
         t["delegations"]["roles"][0]["path_hash_prefixes"] = {"xyz"};
       },
       "hex prefixes"},
      {[](nlohmann::json& t) { t["delegations"]["succinct_roles"] = nlohmann::json::object(); }, "succinct_roles"},
  };
  for (const auto& [edit, expected] : cases) {
    auto refused = targets_with(edit);
    INFO(expected);
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error().message, Catch::Contains("targets.json") && Catch::Contains(expected));
  }
}
