#include "shoal/updater/tuf_metadata.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <set>

#include "shoal/crypto/encoding.h"
#include "shoal/crypto/hash.h"
#include "shoal/updater/canonical_json.h"
#include "shoal/updater/repository_fetcher.h"

namespace shoal::updater {
namespace {

using nlohmann::json;

Error field_error(std::string_view source, std::string_view field, std::string_view problem) {
  return make_error(ErrorCode::corrupt, std::string(source) + ": " + std::string(field) + " " + std::string(problem));
}

// The member `name` of `object`, of the JSON type `type`, or an error naming it.
Result<const json*> member(const json& object, std::string_view source, const std::string& name, json::value_t type) {
  auto found = object.find(name);
  if (found == object.end()) return field_error(source, name, "is missing");
  const bool matches = found->type() == type ||
                       (type == json::value_t::number_unsigned && found->type() == json::value_t::number_integer &&
                        found->get<std::int64_t>() >= 0);
  if (!matches) {
    const char* expected = type == json::value_t::object   ? "an object"
                           : type == json::value_t::array  ? "an array"
                           : type == json::value_t::string ? "a string"
                           : type == json::value_t::boolean ? "a boolean"
                                                            : "a non-negative integer";
    return field_error(source, name, std::string("must be ") + expected + ", not " + found->type_name());
  }
  return &*found;
}

Result<std::uint64_t> unsigned_member(const json& object, std::string_view source, const std::string& name) {
  auto value = member(object, source, name, json::value_t::number_unsigned);
  if (!value) return value.error();
  return (*value)->get<std::uint64_t>();
}

Result<std::string> string_member(const json& object, std::string_view source, const std::string& name) {
  auto value = member(object, source, name, json::value_t::string);
  if (!value) return value.error();
  return (*value)->get<std::string>();
}

json common_fields(std::string_view type, std::uint64_t version, UnixTime expires) {
  return json{{"_type", type}, {"spec_version", kTufSpecVersion}, {"version", version}, {"expires", format_utc(expires)}};
}

struct Common {
  std::uint64_t version = 0;
  UnixTime expires = 0;
};

// _type, spec_version (major 1), version ≥ 1 and expires.
Result<Common> parse_common(const json& signed_part, std::string_view source, RoleName role) {
  if (!signed_part.is_object()) return field_error(source, "signed", "must be an object");
  auto type = string_member(signed_part, source, "_type");
  if (!type) return type.error();
  if (*type != role_name(role)) {
    return field_error(source, "_type", "is '" + *type + "', expected '" + std::string(role_name(role)) + "'");
  }
  auto spec = string_member(signed_part, source, "spec_version");
  if (!spec) return spec.error();
  if (spec->rfind("1.", 0) != 0) {
    return make_error(ErrorCode::unsupported,
                      std::string(source) + ": spec_version '" + *spec + "' is not TUF 1.x, which this build reads");
  }
  Common common;
  auto version = unsigned_member(signed_part, source, "version");
  if (!version) return version.error();
  if (*version == 0) return field_error(source, "version", "must be at least 1");
  common.version = *version;
  auto expires_text = string_member(signed_part, source, "expires");
  if (!expires_text) return expires_text.error();
  auto expires = parse_utc(*expires_text, std::string(source) + ": expires");
  if (!expires) return expires.error();
  common.expires = *expires;
  return common;
}

Result<std::map<std::string, std::string>> parse_hashes(const json& object, std::string_view source,
                                                        const std::string& where) {
  auto hashes = member(object, source, "hashes", json::value_t::object);
  if (!hashes) return field_error(source, where + ".hashes", "is missing or not an object");
  std::map<std::string, std::string> out;
  for (const auto& [algorithm, digest] : (*hashes)->items()) {
    if (!digest.is_string()) return field_error(source, where + ".hashes." + algorithm, "must be a hex string");
    auto bytes = crypto::from_hex(digest.get<std::string>(), where + ".hashes." + algorithm);
    if (!bytes) return field_error(source, where + ".hashes." + algorithm, "is not hex");
    out[algorithm] = digest.get<std::string>();
  }
  return out;
}

Result<MetaFile> parse_meta_file(const json& object, std::string_view source, const std::string& where) {
  if (!object.is_object()) return field_error(source, where, "must be an object");
  MetaFile file;
  auto version = unsigned_member(object, source, "version");
  if (!version) return field_error(source, where + ".version", "is missing or not a non-negative integer");
  file.version = *version;
  if (object.contains("length")) {
    auto length = unsigned_member(object, source, "length");
    if (!length) return field_error(source, where + ".length", "must be a non-negative integer");
    file.length = *length;
  }
  if (object.contains("hashes")) {
    auto hashes = parse_hashes(object, source, where);
    if (!hashes) return hashes.error();
    file.hashes = std::move(hashes).value();
  }
  return file;
}

json meta_file_json(const MetaFile& file) {
  json out{{"version", file.version}};
  if (file.length) out["length"] = *file.length;
  if (!file.hashes.empty()) out["hashes"] = file.hashes;
  return out;
}

std::string signed_bytes_or_throw(const json& signed_part) {
  auto bytes = canonical_json(signed_part);
  if (!bytes) throw std::logic_error(bytes.error().describe());
  return std::move(bytes).value();
}

// A "keys" object of root or of a delegation: each key parsed, and its id
// checked to be the hash of the key object as stored (whichever optional
// fields it has).
Result<std::map<std::string, TufKey>> parse_keys(const json& keys, std::string_view source, const std::string& where) {
  std::map<std::string, TufKey> out;
  for (const auto& [id, key] : keys.items()) {
    const std::string key_where = where + "." + id;
    auto parsed = parse_tuf_key(key, std::string(source) + ": " + key_where);
    if (!parsed) return parsed.error();
    const std::string stored_id = crypto::to_hex(crypto::sha256(signed_bytes_or_throw(key)));
    if (stored_id != id) return field_error(source, key_where, "is not the id of its key (" + stored_id + ")");
    out[id] = std::move(parsed).value();
  }
  return out;
}

// "keyids" and "threshold" of a role, every key id one of `keys`, none twice.
Result<RoleKeys> parse_role_keys(const json& role, std::string_view source, const std::string& where,
                                 const std::map<std::string, TufKey>& keys) {
  RoleKeys role_keys;
  auto keyids = member(role, source, "keyids", json::value_t::array);
  if (!keyids) return field_error(source, where + ".keyids", "is missing or not an array");
  std::set<std::string> seen;
  for (const auto& id : **keyids) {
    if (!id.is_string()) return field_error(source, where + ".keyids", "must hold strings");
    const std::string text = id.get<std::string>();
    if (!keys.contains(text)) return field_error(source, where + ".keyids", "names key " + text + ", not in keys");
    if (!seen.insert(text).second) return field_error(source, where + ".keyids", "names key " + text + " twice");
    role_keys.keyids.push_back(text);
  }
  auto threshold = unsigned_member(role, source, "threshold");
  if (!threshold) return field_error(source, where + ".threshold", "is missing or not a non-negative integer");
  // A threshold above the role's keys is accepted (TUF 1.0 §5.3): only that role's metadata then fails.
  if (*threshold < 1 || *threshold > 1'000'000) {
    return field_error(source, where + ".threshold", "is " + std::to_string(*threshold) + ", must be at least 1");
  }
  role_keys.threshold = static_cast<std::uint32_t>(*threshold);
  return role_keys;
}

Result<std::vector<std::string>> string_list(const json& object, std::string_view source, const std::string& name,
                                             const std::string& where) {
  auto list = member(object, source, name, json::value_t::array);
  if (!list) return field_error(source, where + "." + name, "must be an array of strings");
  std::vector<std::string> out;
  for (const auto& entry : **list) {
    if (!entry.is_string()) return field_error(source, where + "." + name, "must hold strings");
    out.push_back(entry.get<std::string>());
  }
  return out;
}

constexpr std::size_t kMaxRoleNameBytes = 255;

Result<Delegations> parse_delegations(const json& object, std::string_view source) {
  if (!object.is_object()) return field_error(source, "delegations", "must be an object");
  Delegations delegations;
  auto keys = member(object, source, "keys", json::value_t::object);
  if (!keys) return field_error(source, "delegations.keys", "is missing or not an object");
  auto parsed_keys = parse_keys(**keys, source, "delegations.keys");
  if (!parsed_keys) return parsed_keys.error();
  delegations.keys = std::move(parsed_keys).value();
  if (object.contains("succinct_roles")) {
    return make_error(ErrorCode::unsupported, std::string(source) + ": delegations.succinct_roles (TAP 15) is not read by this build");
  }
  auto roles = member(object, source, "roles", json::value_t::array);
  if (!roles) return field_error(source, "delegations.roles", "is missing or not an array");
  std::set<std::string> names;
  for (const auto& entry : **roles) {
    const std::string where = "delegations.roles[" + std::to_string(delegations.roles.size()) + "]";
    if (!entry.is_object()) return field_error(source, where, "must be an object");
    DelegatedRole role;
    auto name = string_member(entry, source, "name");
    if (!name) return field_error(source, where + ".name", "is missing or not a string");
    if (name->empty() || name->size() > kMaxRoleNameBytes) {
      return field_error(source, where + ".name", "must be 1 to 255 bytes");
    }
    if (parse_role_name(*name)) return field_error(source, where + ".name", "'" + *name + "' is a top-level role's name");
    if (!names.insert(*name).second) {
      return field_error(source, where + ".name", "'" + crypto::printable_text(*name) + "' is delegated twice");
    }
    role.name = *name;
    auto role_keys = parse_role_keys(entry, source, where, delegations.keys);
    if (!role_keys) return role_keys.error();
    role.keys = std::move(role_keys).value();
    auto terminating = member(entry, source, "terminating", json::value_t::boolean);
    if (!terminating) return field_error(source, where + ".terminating", "is missing or not a boolean");
    role.terminating = (*terminating)->get<bool>();
    const bool has_paths = entry.contains("paths");
    const bool has_prefixes = entry.contains("path_hash_prefixes");
    if (has_paths == has_prefixes) {
      return field_error(source, where, "must have exactly one of paths and path_hash_prefixes");
    }
    if (has_paths) {
      auto paths = string_list(entry, source, "paths", where);
      if (!paths) return paths.error();
      role.paths = std::move(paths).value();
    } else {
      auto prefixes = string_list(entry, source, "path_hash_prefixes", where);
      if (!prefixes) return prefixes.error();
      for (const auto& prefix : *prefixes) {
        if (prefix.size() > 64 || prefix.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
          return field_error(source, where + ".path_hash_prefixes", "must hold hex prefixes of a SHA-256");
        }
      }
      role.path_hash_prefixes = std::move(prefixes).value();
    }
    delegations.roles.push_back(std::move(role));
  }
  return delegations;
}

json delegations_json(const Delegations& delegations) {
  json keys = json::object();
  for (const auto& [id, key] : delegations.keys) keys[id] = key.object;
  json roles = json::array();
  for (const auto& role : delegations.roles) {
    json entry{{"name", role.name},
               {"keyids", role.keys.keyids},
               {"threshold", role.keys.threshold},
               {"terminating", role.terminating}};
    if (role.path_hash_prefixes.empty()) {
      entry["paths"] = role.paths;
    } else {
      entry["path_hash_prefixes"] = role.path_hash_prefixes;
    }
    roles.push_back(entry);
  }
  return json{{"keys", keys}, {"roles", roles}};
}

// fnmatch-style `*` and `?` within one segment.
bool segment_matches(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace

std::string_view role_name(RoleName role) {
  switch (role) {
    case RoleName::root: return "root";
    case RoleName::targets: return "targets";
    case RoleName::snapshot: return "snapshot";
    case RoleName::timestamp: return "timestamp";
  }
  return "?";
}

Result<RoleName> parse_role_name(std::string_view text) {
  for (RoleName role : kAllRoles) {
    if (role_name(role) == text) return role;
  }
  return make_error(ErrorCode::invalid_argument,
                    "unknown role '" + std::string(text) + "' (expected root, targets, snapshot or timestamp)");
}

std::string metadata_file_name(RoleName role) { return std::string(role_name(role)) + ".json"; }

std::string format_utc(UnixTime time) {
  const std::time_t seconds = static_cast<std::time_t>(time);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

Result<UnixTime> parse_utc(std::string_view text, std::string_view where) {
  std::tm parts{};
  int consumed = 0;
  const std::string copy(text);
  const bool scanned = std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &parts.tm_year, &parts.tm_mon,
                                   &parts.tm_mday, &parts.tm_hour, &parts.tm_min, &parts.tm_sec, &consumed) == 6;
  if (scanned) {
    parts.tm_year -= 1900;
    parts.tm_mon -= 1;
    const UnixTime time = timegm(&parts);
    // Round-tripping refuses out-of-range fields (month 13) and other spellings.
    if (static_cast<std::size_t>(consumed) == text.size() && format_utc(time) == text) return time;
  }
  return make_error(ErrorCode::corrupt, std::string(where) + " '" + copy + "' is not a time of the form 2027-01-31T23:59:59Z");
}

UnixTime now_utc() { return static_cast<UnixTime>(std::time(nullptr)); }

json key_json(const crypto::Ed25519PublicKey& key) {
  // keyid_hash_algorithms: securesystemslib (under python-tuf) and go-tuf write it and
  // hash it into the key id, so with it the ids agree with theirs.
  return json{{"keytype", "ed25519"},
              {"scheme", "ed25519"},
              {"keyid_hash_algorithms", {"sha256", "sha512"}},
              {"keyval", {{"public", crypto::to_hex(key)}}}};
}

std::string key_id(const crypto::Ed25519PublicKey& key) {
  return crypto::to_hex(crypto::sha256(signed_bytes_or_throw(key_json(key))));
}

std::map<std::string, std::string> file_hashes(std::span<const std::uint8_t> bytes) {
  return {{"sha256", crypto::to_hex(crypto::sha256(bytes))}};
}

Status check_hashes(std::span<const std::uint8_t> bytes, const std::map<std::string, std::string>& hashes,
                    std::string_view what) {
  bool checked = false;
  for (const auto& [algorithm, expected] : hashes) {
    std::string actual;
    if (algorithm == "sha256") {
      actual = crypto::to_hex(crypto::sha256(bytes));
    } else if (algorithm == "sha512") {
      std::array<std::uint8_t, crypto_hash_sha512_BYTES> digest{};
      crypto_hash_sha512(digest.data(), bytes.data(), bytes.size());
      actual = crypto::to_hex(digest);
    } else {
      continue;
    }
    std::string lower = expected;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (actual != lower) {
      return make_error(ErrorCode::verification, std::string(what) + ": " + algorithm + " is " + actual +
                                                     ", the signed metadata says " + lower);
    }
    checked = true;
  }
  if (!checked) {
    return make_error(ErrorCode::unsupported, std::string(what) + ": the metadata lists no sha256 or sha512 hash");
  }
  return ok_status();
}

json to_json(const RootMetadata& root) {
  json out = common_fields("root", root.version, root.expires);
  out["consistent_snapshot"] = root.consistent_snapshot;
  json keys = json::object();
  for (const auto& [id, key] : root.keys) keys[id] = key.object;
  out["keys"] = keys;
  json roles = json::object();
  for (const auto& [role, role_keys] : root.roles) {
    roles[std::string(role_name(role))] = json{{"keyids", role_keys.keyids}, {"threshold", role_keys.threshold}};
  }
  out["roles"] = roles;
  return out;
}

Result<RootMetadata> parse_root(const json& signed_part, std::string_view source) {
  auto common = parse_common(signed_part, source, RoleName::root);
  if (!common) return common.error();
  RootMetadata root;
  root.version = common->version;
  root.expires = common->expires;
  auto consistent = member(signed_part, source, "consistent_snapshot", json::value_t::boolean);
  if (!consistent) return consistent.error();
  root.consistent_snapshot = (*consistent)->get<bool>();
  auto keys = member(signed_part, source, "keys", json::value_t::object);
  if (!keys) return keys.error();
  auto parsed_keys = parse_keys(**keys, source, "keys");
  if (!parsed_keys) return parsed_keys.error();
  root.keys = std::move(parsed_keys).value();
  auto roles = member(signed_part, source, "roles", json::value_t::object);
  if (!roles) return roles.error();
  for (RoleName role : kAllRoles) {
    const std::string where = "roles." + std::string(role_name(role));
    auto found = (*roles)->find(std::string(role_name(role)));
    if (found == (*roles)->end() || !found->is_object()) return field_error(source, where, "is missing");
    auto role_keys = parse_role_keys(*found, source, where, root.keys);
    if (!role_keys) return role_keys.error();
    root.roles[role] = std::move(role_keys).value();
  }
  return root;
}

json to_json(const TargetsMetadata& targets) {
  json out = common_fields("targets", targets.version, targets.expires);
  json files = json::object();
  for (const auto& [path, file] : targets.targets) {
    json entry{{"length", file.length}, {"hashes", file.hashes}};
    if (!file.custom.empty()) entry["custom"] = file.custom;
    files[path] = entry;
  }
  out["targets"] = files;
  if (targets.delegations) out["delegations"] = delegations_json(*targets.delegations);
  return out;
}

Result<TargetsMetadata> parse_targets(const json& signed_part, std::string_view source) {
  auto common = parse_common(signed_part, source, RoleName::targets);
  if (!common) return common.error();
  TargetsMetadata targets;
  targets.version = common->version;
  targets.expires = common->expires;
  auto files = member(signed_part, source, "targets", json::value_t::object);
  if (!files) return files.error();
  for (const auto& [path, entry] : (*files)->items()) {
    const std::string where = "targets['" + path + "']";
    if (!is_safe_repository_path(path)) {
      return field_error(source, where, "is not a relative path inside the repository");
    }
    if (!entry.is_object()) return field_error(source, where, "must be an object");
    TargetFile file;
    auto length = unsigned_member(entry, source, "length");
    if (!length) return field_error(source, where + ".length", "is missing or not a non-negative integer");
    file.length = *length;
    auto hashes = parse_hashes(entry, source, where);
    if (!hashes) return hashes.error();
    file.hashes = std::move(hashes).value();
    if (entry.contains("custom")) {
      if (!entry["custom"].is_object()) return field_error(source, where + ".custom", "must be an object");
      file.custom = entry["custom"];
    }
    targets.targets[path] = std::move(file);
  }
  if (signed_part.contains("delegations")) {
    auto delegations = parse_delegations(signed_part["delegations"], source);
    if (!delegations) return delegations.error();
    targets.delegations = std::move(delegations).value();
  }
  return targets;
}

bool path_pattern_matches(std::string_view pattern, std::string_view path) {
  while (true) {
    const auto pattern_end = pattern.find('/');
    const auto path_end = path.find('/');
    if ((pattern_end == std::string_view::npos) != (path_end == std::string_view::npos)) return false;
    if (!segment_matches(pattern.substr(0, pattern_end), path.substr(0, path_end))) return false;
    if (pattern_end == std::string_view::npos) return true;
    pattern.remove_prefix(pattern_end + 1);
    path.remove_prefix(path_end + 1);
  }
}

bool delegated_role_matches(const DelegatedRole& role, std::string_view target_path) {
  for (const auto& pattern : role.paths) {
    if (path_pattern_matches(pattern, target_path)) return true;
  }
  if (role.path_hash_prefixes.empty()) return false;
  const std::string hash = crypto::to_hex(crypto::sha256(
      std::span(reinterpret_cast<const std::uint8_t*>(target_path.data()), target_path.size())));
  for (std::string prefix : role.path_hash_prefixes) {
    std::transform(prefix.begin(), prefix.end(), prefix.begin(), [](unsigned char c) { return std::tolower(c); });
    if (hash.starts_with(prefix)) return true;
  }
  return false;
}

std::string encode_role_name(std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : name) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

json to_json(const SnapshotMetadata& snapshot) {
  json out = common_fields("snapshot", snapshot.version, snapshot.expires);
  json meta = json::object();
  for (const auto& [name, file] : snapshot.meta) meta[name] = meta_file_json(file);
  out["meta"] = meta;
  return out;
}

Result<SnapshotMetadata> parse_snapshot(const json& signed_part, std::string_view source) {
  auto common = parse_common(signed_part, source, RoleName::snapshot);
  if (!common) return common.error();
  SnapshotMetadata snapshot;
  snapshot.version = common->version;
  snapshot.expires = common->expires;
  auto meta = member(signed_part, source, "meta", json::value_t::object);
  if (!meta) return meta.error();
  for (const auto& [name, entry] : (*meta)->items()) {
    auto file = parse_meta_file(entry, source, "meta['" + name + "']");
    if (!file) return file.error();
    snapshot.meta[name] = std::move(file).value();
  }
  return snapshot;
}

json to_json(const TimestampMetadata& timestamp) {
  json out = common_fields("timestamp", timestamp.version, timestamp.expires);
  out["meta"] = json{{"snapshot.json", meta_file_json(timestamp.snapshot)}};
  return out;
}

Result<TimestampMetadata> parse_timestamp(const json& signed_part, std::string_view source) {
  auto common = parse_common(signed_part, source, RoleName::timestamp);
  if (!common) return common.error();
  TimestampMetadata timestamp;
  timestamp.version = common->version;
  timestamp.expires = common->expires;
  auto meta = member(signed_part, source, "meta", json::value_t::object);
  if (!meta) return meta.error();
  auto snapshot = (*meta)->find("snapshot.json");
  if (snapshot == (*meta)->end()) return field_error(source, "meta['snapshot.json']", "is missing");
  auto file = parse_meta_file(*snapshot, source, "meta['snapshot.json']");
  if (!file) return file.error();
  timestamp.snapshot = std::move(file).value();
  return timestamp;
}

Result<SignedMetadata> parse_metadata_file(std::span<const std::uint8_t> bytes, std::string_view source) {
  json document = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return make_error(ErrorCode::corrupt, std::string(source) + ": not valid JSON");
  if (!document.is_object()) return field_error(source, "the document", "must be a JSON object");
  SignedMetadata metadata;
  auto signed_part = member(document, source, "signed", json::value_t::object);
  if (!signed_part) return signed_part.error();
  metadata.signed_part = **signed_part;
  if (auto bytes_ok = canonical_json(metadata.signed_part); !bytes_ok) {
    return field_error(source, "signed", "cannot be put in canonical form: " + bytes_ok.error().message);
  }
  auto signatures = member(document, source, "signatures", json::value_t::array);
  if (!signatures) return signatures.error();
  std::set<std::string> keyids;
  for (const auto& entry : **signatures) {
    if (!entry.is_object()) return field_error(source, "signatures", "must hold objects");
    auto keyid = string_member(entry, source, "keyid");
    auto sig = string_member(entry, source, "sig");
    if (!keyid || !sig) return field_error(source, "signatures", "entries need a keyid and a sig string");
    if (!keyids.insert(*keyid).second) {
      // Read before any signature is checked: the id is a stranger's text until then.
      return field_error(source, "signatures", "name key " + crypto::printable_text(keyid->substr(0, 80)) + " twice");
    }
    auto sig_bytes = crypto::from_hex(*sig, "sig");
    if (!sig_bytes || sig_bytes->empty()) continue;  // not hex: never a valid signature, and no reason to refuse the file
    metadata.signatures.push_back(Signature{*keyid, std::move(sig_bytes).value()});
  }
  return metadata;
}

std::string format_metadata_file(const SignedMetadata& metadata) {
  json signatures = json::array();
  for (const auto& signature : metadata.signatures) {
    signatures.push_back(json{{"keyid", signature.keyid}, {"sig", crypto::to_hex(signature.sig)}});
  }
  return json{{"signatures", signatures}, {"signed", metadata.signed_part}}.dump(1, ' ') + "\n";
}

Status add_signature(SignedMetadata& metadata, const crypto::IdentityKeyPair& key) {
  auto bytes = canonical_json(metadata.signed_part);
  if (!bytes) return bytes.error();
  const std::string id = key_id(key.public_identity().ed25519());
  std::erase_if(metadata.signatures, [&](const Signature& signature) { return signature.keyid == id; });
  const auto sig = key.sign(std::span(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()));
  metadata.signatures.push_back(Signature{id, std::vector<std::uint8_t>(sig.begin(), sig.end())});
  return ok_status();
}

std::size_t count_valid_signatures(const SignedMetadata& metadata, const std::map<std::string, TufKey>& keys,
                                   const RoleKeys& role) {
  auto bytes = canonical_json(metadata.signed_part);
  if (!bytes) return 0;
  const std::span message(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size());
  std::set<std::string> counted;
  for (const auto& signature : metadata.signatures) {
    const auto& ids = role.keyids;
    if (counted.contains(signature.keyid) || std::find(ids.begin(), ids.end(), signature.keyid) == ids.end()) continue;
    auto key = keys.find(signature.keyid);
    if (key == keys.end()) continue;
    if (verify_tuf_signature(key->second, message, signature.sig)) counted.insert(signature.keyid);
  }
  return counted.size();
}

std::size_t count_valid_signatures(const SignedMetadata& metadata, const RootMetadata& root, RoleName role) {
  auto role_keys = root.roles.find(role);
  if (role_keys == root.roles.end()) return 0;
  return count_valid_signatures(metadata, root.keys, role_keys->second);
}

Status verify_threshold(const SignedMetadata& metadata, const RootMetadata& root, RoleName role,
                        std::string_view source) {
  const std::size_t valid = count_valid_signatures(metadata, root, role);
  const std::uint32_t threshold = root.roles.at(role).threshold;
  if (valid < threshold) {
    return make_error(ErrorCode::verification,
                      std::string(source) + ": " + std::to_string(valid) + " valid signature(s) from " +
                          std::string(role_name(role)) + " keys of root version " + std::to_string(root.version) +
                          ", the threshold is " + std::to_string(threshold));
  }
  return ok_status();
}

Status verify_delegated_threshold(const SignedMetadata& metadata, const Delegations& delegations,
                                  const DelegatedRole& role, std::string_view source) {
  const std::size_t valid = count_valid_signatures(metadata, delegations.keys, role.keys);
  if (valid < role.keys.threshold) {
    return make_error(ErrorCode::verification, std::string(source) + ": " + std::to_string(valid) +
                                                   " valid signature(s) from the keys delegated to role '" +
                                                   role.name + "', the threshold is " +
                                                   std::to_string(role.keys.threshold));
  }
  return ok_status();
}

}  // namespace shoal::updater
