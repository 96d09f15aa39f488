#include "shoal/updater/tuf_metadata.h"

#include <catch2/catch.hpp>

#include "shoal/crypto/encoding.h"
#include "shoal/crypto/hash.h"
#include "shoal/updater/canonical_json.h"

using namespace shoal;
using namespace shoal::updater;
using nlohmann::json;

namespace {

std::string error_of(const auto& result) { return result.ok() ? std::string("(no error)") : result.error().message; }

RootMetadata one_key_root(const crypto::IdentityKeyPair& key) {
  RootMetadata root;
  root.version = 3;
  root.expires = parse_utc("2030-01-01T00:00:00Z", "test").value();
  const std::string id = key_id(key.public_identity().ed25519());
  root.keys[id] = TufKey::from_ed25519(key.public_identity().ed25519());
  for (RoleName role : kAllRoles) root.roles[role] = RoleKeys{{id}, 1};
  return root;
}

}  // namespace

TEST_CASE("canonical JSON sorts keys, drops whitespace and escapes only quote and backslash") {
  const json value = json::parse(R"({"b": [1, true, null], "a": "say \"hi\"\\\n", "C": {"z": 0, "y": -2}})");
  CHECK(canonical_json(value).value() == "{\"C\":{\"y\":-2,\"z\":0},\"a\":\"say \\\"hi\\\"\\\\\n\",\"b\":[1,true,null]}");
}

TEST_CASE("canonical JSON refuses floating-point numbers, naming where they are") {
  auto result = canonical_json(json::parse(R"({"meta": {"length": 1.5}})"));
  REQUIRE_FALSE(result.ok());
  CHECK_THAT(result.error().message, Catch::Contains("$.meta.length"));
}

TEST_CASE("a key id is the SHA-256 of the canonical key object, as TUF tooling computes it") {
  const auto key = crypto::IdentityKeyPair::generate();
  const std::string hex = crypto::to_hex(key.public_identity().ed25519());
  const std::string canonical =
      R"({"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":")" + hex +
      R"("},"scheme":"ed25519"})";
  CHECK(key_id(key.public_identity().ed25519()) == crypto::to_hex(crypto::sha256(canonical)));
}

TEST_CASE("TUF times are UTC with a Z, and other spellings are refused") {
  CHECK(format_utc(0) == "1970-01-01T00:00:00Z");
  CHECK(parse_utc("2027-01-15T08:00:00Z", "t").value() == 1'800'000'000);
  CHECK(parse_utc(format_utc(1'800'000'123), "t").value() == 1'800'000'123);
  for (const char* bad : {"2027-13-01T00:00:00Z", "2027-01-15T08:00:00", "2027-01-15 08:00:00Z",
                          "2027-01-15T08:00:00+01:00", "2027-1-5T8:00:00Z"}) {
    INFO(bad);
    auto parsed = parse_utc(bad, "snapshot.json: expires");
    REQUIRE_FALSE(parsed.ok());
    CHECK_THAT(parsed.error().message, Catch::Contains("snapshot.json: expires"));
  }
}

TEST_CASE("each role's metadata survives writing and reading back") {
  const auto key = crypto::IdentityKeyPair::generate();
  const RootMetadata root = one_key_root(key);
  auto root_back = parse_root(to_json(root), "root.json");
  REQUIRE(root_back.ok());
  CHECK(root_back->version == 3);
  CHECK(root_back->expires == root.expires);
  CHECK(root_back->keys == root.keys);
  CHECK(root_back->roles.at(RoleName::timestamp).keyids == root.roles.at(RoleName::timestamp).keyids);

  TargetsMetadata targets;
  targets.version = 7;
  targets.expires = root.expires;
  targets.targets["cnn/v2.weights"] = TargetFile{123, {{"sha256", std::string(64, 'a')}}, json{{"model", "cnn"}}};
  auto targets_back = parse_targets(to_json(targets), "targets.json");
  REQUIRE(targets_back.ok());
  CHECK(targets_back->targets.at("cnn/v2.weights").length == 123);
  CHECK(targets_back->targets.at("cnn/v2.weights").custom["model"] == "cnn");

  SnapshotMetadata snapshot;
  snapshot.version = 4;
  snapshot.expires = root.expires;
  snapshot.meta["targets.json"] = MetaFile{7, 900, {{"sha256", std::string(64, 'b')}}};
  auto snapshot_back = parse_snapshot(to_json(snapshot), "snapshot.json");
  REQUIRE(snapshot_back.ok());
  CHECK(snapshot_back->meta.at("targets.json").version == 7);
  CHECK(snapshot_back->meta.at("targets.json").length == 900u);

  TimestampMetadata timestamp;
  timestamp.version = 9;
  timestamp.expires = root.expires;
  timestamp.snapshot = MetaFile{4, std::nullopt, {}};
  auto timestamp_back = parse_timestamp(to_json(timestamp), "timestamp.json");
  REQUIRE(timestamp_back.ok());
  CHECK(timestamp_back->snapshot.version == 4);
  CHECK_FALSE(timestamp_back->snapshot.length.has_value());
}

TEST_CASE("malformed metadata is refused with the file and the field named") {
  const auto key = crypto::IdentityKeyPair::generate();
  const json root = to_json(one_key_root(key));
  auto edited = [&](auto edit) {
    json copy = root;
    edit(copy);
    return error_of(parse_root(copy, "metadata/2.root.json"));
  };
  CHECK_THAT(edited([](json& j) { j.erase("version"); }), Catch::Contains("metadata/2.root.json: version is missing"));
  CHECK_THAT(edited([](json& j) { j["version"] = 0; }), Catch::Contains("version must be at least 1"));
  CHECK_THAT(edited([](json& j) { j["version"] = "3"; }), Catch::Contains("version must be a non-negative integer"));
  CHECK_THAT(edited([](json& j) { j["_type"] = "targets"; }), Catch::Contains("_type is 'targets', expected 'root'"));
  CHECK_THAT(edited([](json& j) { j["spec_version"] = "2.0.0"; }), Catch::Contains("not TUF 1.x"));
  CHECK_THAT(edited([](json& j) { j["expires"] = "tomorrow"; }), Catch::Contains("expires 'tomorrow'"));
  CHECK_THAT(edited([](json& j) { j["roles"]["snapshot"]["threshold"] = 0; }),
             Catch::Contains("roles.snapshot.threshold is 0"));
  CHECK_THAT(edited([](json& j) { j["roles"]["targets"]["keyids"] = json::array({"00ff"}); }),
             Catch::Contains("names key 00ff, not in keys"));
  CHECK_THAT(edited([](json& j) { j["roles"].erase("timestamp"); }), Catch::Contains("roles.timestamp is missing"));
  CHECK_THAT(edited([](json& j) {
               auto& keys = j["keys"];
               auto entry = keys.begin().value();
               entry["keyval"]["public"] = std::string(64, '1');
               keys[keys.begin().key()] = entry;
             }),
             Catch::Contains("is not the id of its key"));

  TargetsMetadata targets;
  targets.expires = 1'900'000'000;
  targets.targets["../escape"] = TargetFile{1, {{"sha256", std::string(64, 'a')}}, json::object()};
  CHECK_THAT(error_of(parse_targets(to_json(targets), "targets.json")), Catch::Contains("not a relative path"));

  const std::string not_json = "{\"signed\": ";
  CHECK_THAT(error_of(parse_metadata_file(std::span(reinterpret_cast<const std::uint8_t*>(not_json.data()),
                                                    not_json.size()),
                                          "metadata/timestamp.json")),
             Catch::Contains("metadata/timestamp.json: not valid JSON"));
}

TEST_CASE("a threshold counts distinct valid signatures of the role's keys only") {
  const auto first = crypto::IdentityKeyPair::generate();
  const auto second = crypto::IdentityKeyPair::generate();
  const auto outsider = crypto::IdentityKeyPair::generate();
  RootMetadata root = one_key_root(first);
  root.keys[key_id(second.public_identity().ed25519())] = TufKey::from_ed25519(second.public_identity().ed25519());
  root.roles[RoleName::targets] = RoleKeys{{key_id(first.public_identity().ed25519()),
                                            key_id(second.public_identity().ed25519())}, 2};

  SignedMetadata metadata{json{{"_type", "targets"}, {"version", 1}}, {}};
  REQUIRE(add_signature(metadata, first).ok());
  REQUIRE(add_signature(metadata, outsider).ok());
  CHECK(count_valid_signatures(metadata, root, RoleName::targets) == 1);
  // The same key's signature twice still counts once.
  metadata.signatures.push_back(metadata.signatures.front());
  CHECK(count_valid_signatures(metadata, root, RoleName::targets) == 1);
  auto refused = verify_threshold(metadata, root, RoleName::targets, "targets.json");
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("1 valid signature(s) from targets keys"));
  CHECK_THAT(refused.error().message, Catch::Contains("threshold is 2"));

  REQUIRE(add_signature(metadata, second).ok());
  CHECK(verify_threshold(metadata, root, RoleName::targets, "targets.json").ok());
  // Any change to the signed part voids every signature.
  metadata.signed_part["version"] = 2;
  CHECK(count_valid_signatures(metadata, root, RoleName::targets) == 0);
}

TEST_CASE("a metadata file round-trips through its stored form with its signatures") {
  const auto key = crypto::IdentityKeyPair::generate();
  SignedMetadata metadata{to_json(one_key_root(key)), {}};
  REQUIRE(add_signature(metadata, key).ok());
  const std::string text = format_metadata_file(metadata);
  auto back = parse_metadata_file(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), "root");
  REQUIRE(back.ok());
  CHECK(back->signed_part == metadata.signed_part);
  REQUIRE(back->signatures.size() == 1);
  CHECK(back->signatures[0].sig == metadata.signatures[0].sig);
  CHECK(verify_threshold(*back, one_key_root(key), RoleName::root, "root").ok());
}
