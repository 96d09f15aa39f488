#include "shoal/updater/release_repository.h"

#include <catch2/catch.hpp>

#include <cstring>

#include "release_fixture.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/weights/weights_file.h"

using namespace shoal;
using namespace shoal::updater;
using shoal::testing::ReleaseFixture;
namespace fs = std::filesystem;

TEST_CASE("init stages root version 1 with every role's keys and refuses an existing repository") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  const RootMetadata& root = repository.staged_root();
  CHECK(root.version == 1);
  CHECK(root.keys.size() == 4);
  CHECK(root.roles.at(RoleName::targets).keyids ==
        std::vector<std::string>{key_id(fixture.targets_key.public_identity().ed25519())});
  CHECK(root.expires == fixture.now + 365 * 24 * 3600);
  // Nothing is published until publish.
  CHECK_FALSE(fs::exists(fixture.metadata_path(RoleName::root)));

  std::map<RoleName, RoleKeyChoice> keys;
  for (RoleName role : kAllRoles) keys[role].keys = {fixture.root_key.public_identity()};
  auto again = ReleaseRepository::init(fixture.repo_dir, keys, fixture.now);
  REQUIRE_FALSE(again.ok());
  CHECK_THAT(again.error().message, Catch::Contains("already holds a release repository"));

  keys[RoleName::snapshot].threshold = 2;
  auto too_high = ReleaseRepository::init(fixture.temp / "other", keys, fixture.now);
  REQUIRE_FALSE(too_high.ok());
  CHECK_THAT(too_high.error().message, Catch::Contains("snapshot threshold 2 must be 1 to its 1 key(s)"));
}

TEST_CASE("add writes the full file and deltas from earlier versions, and lists them as signed targets") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  fixture.release(repository, 2);
  auto added = repository.add(ReleaseFixture::model_version(3), "cnn", 5, fixture.now);
  REQUIRE(added.ok());
  CHECK(added->full.path == "cnn/v3.weights");
  REQUIRE(added->deltas.size() == 2);  // from 2 and from 1: all there are
  CHECK(added->deltas[0].path == "cnn/v3.from-v2.delta");
  CHECK(added->deltas[1].base_version == 1);

  for (const ReleaseFile& delta : added->deltas) {
    INFO(delta.path);
    auto bytes = base::read_file(fixture.repo_dir / "targets" / delta.path, 1 << 24);
    REQUIRE(bytes.ok());
    CHECK(delta.length < added->full.length);
    const TargetFile& target = repository.staged_targets().targets.at(delta.path);
    CHECK(target.length == bytes->size());
    CHECK(check_hashes(shoal::testing::bytes_of(*bytes), target.hashes, delta.path).ok());
    // The delta rebuilds version 3 from its base.
    auto base = weights::read_weights_file(fixture.repo_dir / "targets" / full_file_path("cnn", delta.base_version));
    REQUIRE(base.ok());
    auto rebuilt = apply_delta(*base, shoal::testing::bytes_of(*bytes), delta.path);
    REQUIRE(rebuilt.ok());
    CHECK(values_hash(*rebuilt) == values_hash(ReleaseFixture::model_version(3)));
  }
  // A changed targets needs signing again before it can be published.
  CHECK(repository.staged_targets_file().signatures.empty());
  CHECK(repository.staged_targets().version == 3);
}

TEST_CASE("add falls back to the full file alone when a delta would not be much smaller") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  // A version of incompressible weights (random bits, any finite exponent):
  // no transform makes its delta much smaller than the file itself.
  auto fresh = ReleaseFixture::model_version(1);
  std::mt19937 rng(99);
  std::vector<float> values(fresh.values().size());
  for (auto& v : values) {
    std::uint32_t bits = rng();
    if (((bits >> 23) & 0xff) == 0xff) bits ^= 1u << 23;  // no Inf or NaN
    std::memcpy(&v, &bits, sizeof v);
  }
  auto added = repository.add(*weights::Weights::from_values(fresh.layout(), 2, values), "cnn", 3, fixture.now);
  REQUIRE(added.ok());
  CHECK(added->deltas.empty());
  REQUIRE(added->skipped.size() == 1);
  CHECK_THAT(added->skipped[0], Catch::Contains("not enough smaller than the full file"));
}

TEST_CASE("add refuses a version that is not newer, and a model name that is not a plain name") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 4);
  auto older = repository.add(ReleaseFixture::model_version(3), "cnn", 1, fixture.now);
  REQUIRE_FALSE(older.ok());
  CHECK_THAT(older.error().message, Catch::Contains("cnn version 3 is not newer than the released 4"));
  auto escaping = repository.add(ReleaseFixture::model_version(5), "../cnn", 1, fixture.now);
  REQUIRE_FALSE(escaping.ok());
  CHECK_THAT(escaping.error().message, Catch::Contains("model name '../cnn'"));
}

TEST_CASE("sign accepts only the role's keys, and publish only met thresholds") {
  ReleaseFixture fixture;
  const auto second_targets_key = crypto::IdentityKeyPair::generate();
  auto repository = fixture.make_repository(fixture.role_keys(&second_targets_key), {&fixture.root_key});
  REQUIRE(repository.add(ReleaseFixture::model_version(1), "cnn", 1, fixture.now).ok());

  auto wrong_key = repository.sign(RoleName::targets, fixture.snapshot_key);
  REQUIRE_FALSE(wrong_key.ok());
  CHECK_THAT(wrong_key.error().message, Catch::Contains("is not a targets key"));

  REQUIRE(repository.sign(RoleName::targets, fixture.targets_key).ok());
  auto short_of_threshold = repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now);
  REQUIRE_FALSE(short_of_threshold.ok());
  CHECK_THAT(short_of_threshold.error().message, Catch::Contains("staged targets: 1 valid signature(s)"));
  CHECK_FALSE(fs::exists(fixture.metadata_path(RoleName::timestamp)));

  // Signing twice with one key does not reach a threshold of two.
  REQUIRE(repository.sign(RoleName::targets, fixture.targets_key).ok());
  CHECK_FALSE(repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now).ok());

  // A second holder signs, from a repository opened afresh.
  auto reopened = ReleaseRepository::open(fixture.repo_dir);
  REQUIRE(reopened.ok());
  REQUIRE(reopened->sign(RoleName::targets, second_targets_key).ok());
  auto swapped_online_keys = reopened->publish(fixture.timestamp_key, fixture.snapshot_key, fixture.now);
  REQUIRE_FALSE(swapped_online_keys.ok());
  CHECK_THAT(swapped_online_keys.error().message, Catch::Contains("the snapshot key given is not one of"));
  REQUIRE(reopened->publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now).ok());
  CHECK(fs::exists(fixture.metadata_path(RoleName::timestamp)));
  CHECK(fs::exists(fixture.repo_dir / "metadata" / "1.root.json"));
}

TEST_CASE("publish chains timestamp to snapshot to targets by version, length and hash") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  fixture.release(repository, 2);
  const auto targets_text = base::read_file(fixture.metadata_path(RoleName::targets), 1 << 24).value();
  const auto snapshot_text = base::read_file(fixture.metadata_path(RoleName::snapshot), 1 << 24).value();
  auto snapshot = parse_snapshot(fixture.read_metadata(fixture.metadata_path(RoleName::snapshot)).signed_part, "s");
  auto timestamp = parse_timestamp(fixture.read_metadata(fixture.metadata_path(RoleName::timestamp)).signed_part, "t");
  REQUIRE(snapshot.ok());
  REQUIRE(timestamp.ok());
  CHECK(snapshot->version == 2);
  CHECK(snapshot->meta.at("targets.json").version == 2);
  CHECK(snapshot->meta.at("targets.json").length == targets_text.size());
  CHECK(check_hashes(shoal::testing::bytes_of(targets_text), snapshot->meta.at("targets.json").hashes, "t").ok());
  CHECK(timestamp->version == 2);
  CHECK(timestamp->snapshot.version == 2);
  CHECK(check_hashes(shoal::testing::bytes_of(snapshot_text), timestamp->snapshot.hashes, "s").ok());
  CHECK(timestamp->expires == fixture.now + 24 * 3600);
}

TEST_CASE("a rotated root needs the old and the new root keys' thresholds before it is published") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  const auto new_root_key = crypto::IdentityKeyPair::generate();
  REQUIRE(repository.rotate({{RoleName::root, RoleKeyChoice{{new_root_key.public_identity()}, 1}}}, fixture.now).ok());
  CHECK(repository.staged_root().version == 2);
  CHECK(repository.staged_root().keys.size() == 4);  // the old root key is gone

  REQUIRE(repository.sign(RoleName::root, new_root_key).ok());
  auto only_new = repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now);
  REQUIRE_FALSE(only_new.ok());
  CHECK_THAT(only_new.error().message, Catch::Contains("previous root's keys"));
  REQUIRE(repository.sign(RoleName::root, fixture.root_key).ok());
  REQUIRE(repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now).ok());
  CHECK(fs::exists(fixture.repo_dir / "metadata" / "2.root.json"));

  const auto outsider = crypto::IdentityKeyPair::generate();
  auto refused = repository.sign(RoleName::root, outsider);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("is not a root key of root version 2"));
}

TEST_CASE("a lossy release is the quantised version, within its bound, and what the metadata hashes") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  fixture.release(repository, 1);
  const auto given = ReleaseFixture::model_version(2);
  auto added = repository.add(given, "cnn", 1, fixture.now, 5e-5f);
  REQUIRE(added.ok());
  REQUIRE(added->lossy_max_error.has_value());
  CHECK(*added->lossy_max_error <= 5e-5f * 1.001f);
  CHECK(added->full.lossy_error_bound == "5e-05");
  REQUIRE(added->deltas.size() == 1);
  const auto exact_delta = encode_delta(ReleaseFixture::model_version(1), given);
  REQUIRE(exact_delta.ok());
  CHECK(added->deltas[0].length < exact_delta->size() / 2);

  auto released = weights::read_weights_file(fixture.repo_dir / "targets" / added->full.path);
  REQUIRE(released.ok());
  CHECK(values_hash(*released) == added->full.values_hash);
  CHECK(values_hash(*released) != values_hash(given));
  auto custom = parse_release_file(added->full.path, repository.staged_targets().targets.at(added->full.path), "t");
  REQUIRE(custom.ok());
  CHECK(custom->lossy_error_bound == "5e-05");
}

TEST_CASE("a target's shoal metadata that is missing or malformed is refused, naming the target") {
  TargetFile target;
  target.length = 10;
  auto error_of = [&](const nlohmann::json& custom) {
    target.custom = custom;
    auto parsed = parse_release_file("cnn/v2.weights", target, "targets.json");
    return parsed ? std::string("(accepted)") : parsed.error().message;
  };
  const std::string hash(64, 'a');
  CHECK_THAT(error_of({{"model", "cnn"}}), Catch::Contains("targets.json: target 'cnn/v2.weights' custom metadata: "
                                                          "needs a model name and a model_version"));
  CHECK_THAT(error_of({{"model", "cnn"}, {"model_version", 2}, {"values_blake2b", "zz"}}),
             Catch::Contains("values_blake2b is not 32 bytes of hex"));
  CHECK_THAT(error_of({{"model", "cnn"}, {"model_version", 2}, {"values_blake2b", hash}, {"kind", "patch"}}),
             Catch::Contains("kind 'patch' is neither full nor delta"));
  CHECK_THAT(error_of({{"model", "cnn"}, {"model_version", 2}, {"values_blake2b", hash}, {"kind", "full"},
                       {"codec", "gzip"}}),
             Catch::Contains("codec 'gzip' is not shoal-weights/1"));
  CHECK_THAT(error_of({{"model", "cnn"}, {"model_version", 2}, {"values_blake2b", hash}, {"kind", "delta"},
                       {"codec", "shoal-delta/1"}}),
             Catch::Contains("a delta needs base_version and base_values_blake2b"));
}
