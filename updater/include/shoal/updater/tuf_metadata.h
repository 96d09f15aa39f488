// Release metadata in the format of The Update Framework (TUF) 1.0: the
// roles root, targets, snapshot and timestamp, each a JSON file
//
//   {"signatures": [{"keyid": "<hex>", "sig": "<hex>"}], "signed": {"_type": "targets", ...}}
//
// whose "signed" part is signed over its canonical JSON form. shoal signs
// with ed25519 keys; ECDSA P-256 and RSA-PSS keys of other TUF tools are
// verified too (tuf_key.h). A key's id is the hex SHA-256 of its canonical key object, which
// carries keyid_hash_algorithms as securesystemslib (under python-tuf) and
// go-tuf write it, so their key ids and shoal's agree and standard TUF
// tooling can read a shoal repository (tests/tuf_interop_check.py checks
// this with securesystemslib).
//
// The structs below are the "signed" parts; parse_* check every field
// (type, spec version, version ≥ 1, expiry, key and hash formats) and name
// the file and field that was wrong.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"
#include "shoal/updater/tuf_key.h"

namespace shoal::updater {

inline constexpr std::string_view kTufSpecVersion = "1.0.31";

enum class RoleName { root, targets, snapshot, timestamp };
inline constexpr std::array<RoleName, 4> kAllRoles = {RoleName::root, RoleName::targets, RoleName::snapshot,
                                                     RoleName::timestamp};
std::string_view role_name(RoleName role);
Result<RoleName> parse_role_name(std::string_view text);
// "root.json", "targets.json", ... — the role's file name in a repository.
std::string metadata_file_name(RoleName role);

// Seconds since 1970-01-01 UTC. TUF writes times as "2027-11-27T06:00:00Z".
using UnixTime = std::int64_t;
std::string format_utc(UnixTime time);
Result<UnixTime> parse_utc(std::string_view text, std::string_view where);
UnixTime now_utc();

// The TUF key object of an ed25519 public key and its key id.
nlohmann::json key_json(const crypto::Ed25519PublicKey& key);
std::string key_id(const crypto::Ed25519PublicKey& key);

struct RoleKeys {
  std::vector<std::string> keyids;
  std::uint32_t threshold = 1;
};

struct RootMetadata {
  std::uint64_t version = 1;
  UnixTime expires = 0;
  bool consistent_snapshot = false;
  std::map<std::string, TufKey> keys;  // by key id
  std::map<RoleName, RoleKeys> roles;                    // all four
};

// {"sha256": "<hex>"} of `bytes`; check_hashes compares against such a map.
std::map<std::string, std::string> file_hashes(std::span<const std::uint8_t> bytes);
// Every hash algorithm this build knows (sha256, sha512) that `hashes`
// lists must match, and at least one must be listed.
Status check_hashes(std::span<const std::uint8_t> bytes, const std::map<std::string, std::string>& hashes,
                    std::string_view what);

struct TargetFile {
  std::uint64_t length = 0;
  std::map<std::string, std::string> hashes;
  nlohmann::json custom = nlohmann::json::object();
};

// A targets role that trusts another with some of its target paths
// (spec §5.6.7): the delegated role's metadata must meet `keys`' threshold
// among the delegation's keys. Exactly one of `paths` (patterns in which
// `*` and `?` match within one path segment) and `path_hash_prefixes`
// (of the hex SHA-256 of the target path) says which paths it may sign.
struct DelegatedRole {
  std::string name;
  RoleKeys keys;
  bool terminating = false;
  std::vector<std::string> paths;
  std::vector<std::string> path_hash_prefixes;
};

struct Delegations {
  std::map<std::string, TufKey> keys;  // by key id
  std::vector<DelegatedRole> roles;    // in the order they are searched
};

struct TargetsMetadata {
  std::uint64_t version = 1;
  UnixTime expires = 0;
  std::map<std::string, TargetFile> targets;  // by target path
  std::optional<Delegations> delegations;
};

// Whether `pattern` matches `path` segment by segment: both have the same
// number of '/'-separated segments, and in each `*` matches any run of
// characters and `?` any one character.
bool path_pattern_matches(std::string_view pattern, std::string_view path);
// Whether `role` may sign `target_path`.
bool delegated_role_matches(const DelegatedRole& role, std::string_view target_path);
// A role name as it appears in file names and URLs ("<name>.json"): every
// byte outside [A-Za-z0-9_.~-] is percent-encoded, as python-tuf does, so
// "a/b" becomes "a%2Fb" and no name can leave its directory.
std::string encode_role_name(std::string_view name);

// What snapshot and timestamp say about another metadata file.
struct MetaFile {
  std::uint64_t version = 1;
  std::optional<std::uint64_t> length;
  std::map<std::string, std::string> hashes;
};

struct SnapshotMetadata {
  std::uint64_t version = 1;
  UnixTime expires = 0;
  std::map<std::string, MetaFile> meta;  // "targets.json" → its version
};

struct TimestampMetadata {
  std::uint64_t version = 1;
  UnixTime expires = 0;
  MetaFile snapshot;  // meta["snapshot.json"]
};

nlohmann::json to_json(const RootMetadata& root);
nlohmann::json to_json(const TargetsMetadata& targets);
nlohmann::json to_json(const SnapshotMetadata& snapshot);
nlohmann::json to_json(const TimestampMetadata& timestamp);

Result<RootMetadata> parse_root(const nlohmann::json& signed_part, std::string_view source);
Result<TargetsMetadata> parse_targets(const nlohmann::json& signed_part, std::string_view source);
Result<SnapshotMetadata> parse_snapshot(const nlohmann::json& signed_part, std::string_view source);
Result<TimestampMetadata> parse_timestamp(const nlohmann::json& signed_part, std::string_view source);

struct Signature {
  std::string keyid;
  std::vector<std::uint8_t> sig;  // 64 bytes for ed25519; DER for ECDSA; the modulus' size for RSA
};

// A metadata file as stored: the signed part and its signatures. Parsing
// skips a signature that is not hex (it could never be valid) and refuses
// a file that lists one key id twice.
struct SignedMetadata {
  nlohmann::json signed_part;
  std::vector<Signature> signatures;
};

Result<SignedMetadata> parse_metadata_file(std::span<const std::uint8_t> bytes, std::string_view source);
std::string format_metadata_file(const SignedMetadata& metadata);

// Signs the canonical form of metadata.signed_part, replacing an earlier
// signature by the same key.
Status add_signature(SignedMetadata& metadata, const crypto::IdentityKeyPair& key);

// How many distinct keys of `role` in `root` signed `metadata` validly. A
// key that signed twice counts once; signatures by other keys are ignored.
std::size_t count_valid_signatures(const SignedMetadata& metadata, const RootMetadata& root, RoleName role);
std::size_t count_valid_signatures(const SignedMetadata& metadata, const std::map<std::string, TufKey>& keys,
                                   const RoleKeys& role);
// Fails, naming the role, the count and the threshold, unless the
// threshold of `role` in `root` is met.
Status verify_threshold(const SignedMetadata& metadata, const RootMetadata& root, RoleName role,
                        std::string_view source);
// The same for a delegated role, against the delegation in its delegator.
Status verify_delegated_threshold(const SignedMetadata& metadata, const Delegations& delegations,
                                  const DelegatedRole& role, std::string_view source);

}  // namespace shoal::updater
