#include "shoal/updater/tuf_client.h"

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"

#include <set>

namespace fs = std::filesystem;

namespace shoal::updater {
namespace {

Error step_error(std::string_view step, const Error& error) {
  return make_error(error.code, std::string(step) + ": " + error.message);
}

Status check_expiry(UnixTime expires, UnixTime start_time, std::string_view what) {
  if (expires <= start_time) {
    return make_error(ErrorCode::verification, std::string(what) + " expired at " + format_utc(expires) +
                                                   " (the update started at " + format_utc(start_time) + ")");
  }
  return ok_status();
}

// Reads a stored metadata file and checks it against `root`; nullopt if it
// is absent, damaged or no longer signed by the role's current keys.
template <typename Parsed, typename Parse>
std::optional<Parsed> load_trusted(const fs::path& path, const RootMetadata& root, RoleName role, Parse parse,
                                   base::Env& env) {
  auto bytes = base::read_file(path, 64 << 20, env);
  if (!bytes) return std::nullopt;
  auto metadata = parse_metadata_file(base::text_bytes(*bytes), path.string());
  if (!metadata || !verify_threshold(*metadata, root, role, path.string())) return std::nullopt;
  auto parsed = parse(metadata->signed_part, path.string());
  if (!parsed) return std::nullopt;
  return std::move(parsed).value();
}

// A metadata file the trusted metadata above it lists: downloaded within its
// listed length (else `cap`), checked against its listed hashes, then signed
// by the threshold of `role`'s keys.
struct ListedFile {
  std::vector<std::uint8_t> bytes;
  SignedMetadata metadata;
};

Result<ListedFile> fetch_listed(RepositoryFetcher& fetcher, const std::string& path, const MetaFile& listed,
                                std::uint64_t cap, const RootMetadata& root, RoleName role) {
  auto bytes = fetcher.fetch(path, listed.length.value_or(cap));
  if (!bytes) return bytes.error();
  if (!listed.hashes.empty()) {
    if (auto status = check_hashes(*bytes, listed.hashes, path); !status) return status.error();
  }
  auto metadata = parse_metadata_file(*bytes, path);
  if (!metadata) return metadata.error();
  if (auto status = verify_threshold(*metadata, root, role, path); !status) return status.error();
  return ListedFile{std::move(bytes).value(), std::move(metadata).value()};
}

}  // namespace

Status TufClient::trust_root(const fs::path& trust_dir, std::span<const std::uint8_t> root_file,
                             std::string_view source, base::Env& env) {
  if (fs::exists(trust_dir / "root.json")) {
    return make_error(ErrorCode::invalid_argument,
                      (trust_dir / "root.json").string() + " already exists: a device's root changes only by rotation");
  }
  auto metadata = parse_metadata_file(root_file, source);
  if (!metadata) return metadata.error();
  auto root = parse_root(metadata->signed_part, source);
  if (!root) return root.error();
  if (auto status = verify_threshold(*metadata, *root, RoleName::root, source); !status) return status;
  if (auto status = env.create_directories(trust_dir); !status) return status;
  return base::write_file_durably(trust_dir / "root.json", root_file, 0644, env);
}

Result<TufClient> TufClient::open(const fs::path& trust_dir, DownloadLimits limits, base::Env& env) {
  const fs::path root_path = trust_dir / "root.json";
  auto bytes = base::read_file(root_path, limits.root_bytes, env);
  if (!bytes) {
    if (bytes.error().code == ErrorCode::not_found) {
      return make_error(ErrorCode::not_found, root_path.string() + " does not exist: this device trusts no release root yet");
    }
    return bytes.error();
  }
  auto metadata = parse_metadata_file(base::text_bytes(*bytes), root_path.string());
  if (!metadata) return metadata.error();
  auto root = parse_root(metadata->signed_part, root_path.string());
  if (!root) return root.error();
  TufClient client(trust_dir, limits, env);
  client.trusted_.root = std::move(root).value();
  const RootMetadata& trusted_root = client.trusted_.root;
  client.trusted_.timestamp =
      load_trusted<TimestampMetadata>(trust_dir / "timestamp.json", trusted_root, RoleName::timestamp, parse_timestamp, env);
  client.trusted_.snapshot =
      load_trusted<SnapshotMetadata>(trust_dir / "snapshot.json", trusted_root, RoleName::snapshot, parse_snapshot, env);
  client.trusted_.targets =
      load_trusted<TargetsMetadata>(trust_dir / "targets.json", trusted_root, RoleName::targets, parse_targets, env);
  return client;
}

Status TufClient::keep(const std::string& file_name, std::span<const std::uint8_t> bytes) const {
  return base::write_file_durably(trust_dir_ / file_name, bytes, 0644, *env_);
}

std::optional<SignedMetadata> TufClient::kept_listed(const std::string& file_name, const MetaFile& listed,
                                                     const std::function<Status(const SignedMetadata&)>& verify) const {
  auto bytes = base::read_file(trust_dir_ / file_name, 64 << 20, *env_);
  if (!bytes) return std::nullopt;
  const auto kept = base::text_bytes(*bytes);
  if (listed.length && kept.size() != *listed.length) return std::nullopt;
  if (!listed.hashes.empty() && !check_hashes(kept, listed.hashes, file_name)) return std::nullopt;
  auto metadata = parse_metadata_file(kept, file_name);
  if (!metadata || !verify(*metadata)) return std::nullopt;
  return std::move(metadata).value();
}

std::string TufClient::metadata_path(const std::string& encoded_role, std::uint64_t version) const {
  if (trusted_.root.consistent_snapshot) return "metadata/" + std::to_string(version) + "." + encoded_role + ".json";
  return "metadata/" + encoded_role + ".json";
}

void TufClient::forget(RoleName role) {
  (void)env_->remove_file(trust_dir_ / metadata_file_name(role));  // absent is fine: forgotten either way
  if (role == RoleName::timestamp) trusted_.timestamp.reset();
  if (role == RoleName::snapshot) trusted_.snapshot.reset();
}

Result<TargetsMetadata> TufClient::refresh(RepositoryFetcher& fetcher, UnixTime start_time) {
  trusted_.delegated.clear();  // verified again against this refresh's snapshot when a lookup needs them
  if (auto status = update_root(fetcher, start_time); !status) return step_error("root", status.error());
  if (auto status = update_timestamp(fetcher, start_time); !status) return step_error("timestamp", status.error());
  if (auto status = update_snapshot(fetcher, start_time); !status) return step_error("snapshot", status.error());
  if (auto status = update_targets(fetcher, start_time); !status) return step_error("targets", status.error());
  return *trusted_.targets;
}

Status TufClient::update_root(RepositoryFetcher& fetcher, UnixTime start_time) {
  for (int rotation = 0; rotation < limits_.max_root_rotations; ++rotation) {
    const std::uint64_t next = trusted_.root.version + 1;
    const std::string path = "metadata/" + std::to_string(next) + ".root.json";
    auto bytes = fetcher.fetch(path, limits_.root_bytes);
    if (!bytes && bytes.error().code == ErrorCode::not_found) break;
    if (!bytes) return bytes.error();
    auto metadata = parse_metadata_file(*bytes, path);
    if (!metadata) return metadata.error();
    // Signed by the trusted root's keys, and by its own.
    if (auto status = verify_threshold(*metadata, trusted_.root, RoleName::root, path + " (by the trusted root's keys)");
        !status) {
      return status;
    }
    auto root = parse_root(metadata->signed_part, path);
    if (!root) return root.error();
    if (auto status = verify_threshold(*metadata, *root, RoleName::root, path + " (by its own keys)"); !status) {
      return status;
    }
    if (root->version != next) {
      return make_error(ErrorCode::verification, path + " says it is root version " + std::to_string(root->version) +
                                                     ", expected " + std::to_string(next));
    }
    if (auto status = keep(metadata_file_name(RoleName::root), *bytes); !status) return status;
    // New timestamp or snapshot keys: forget their metadata, so a rollback
    // attack with compromised old keys cannot leave the device stuck (5.3.11).
    const bool timestamp_keys_changed = root->roles.at(RoleName::timestamp).keyids !=
                                        trusted_.root.roles.at(RoleName::timestamp).keyids;
    const bool snapshot_keys_changed = root->roles.at(RoleName::snapshot).keyids !=
                                       trusted_.root.roles.at(RoleName::snapshot).keyids;
    trusted_.root = std::move(root).value();
    if (timestamp_keys_changed || snapshot_keys_changed) {
      forget(RoleName::timestamp);
      forget(RoleName::snapshot);
    }
  }
  return check_expiry(trusted_.root.expires, start_time, "root version " + std::to_string(trusted_.root.version));
}

Status TufClient::update_timestamp(RepositoryFetcher& fetcher, UnixTime start_time) {
  const std::string path = "metadata/timestamp.json";
  auto bytes = fetcher.fetch(path, limits_.timestamp_bytes);
  if (!bytes) return bytes.error();
  auto metadata = parse_metadata_file(*bytes, path);
  if (!metadata) return metadata.error();
  if (auto status = verify_threshold(*metadata, trusted_.root, RoleName::timestamp, path); !status) return status;
  auto timestamp = parse_timestamp(metadata->signed_part, path);
  if (!timestamp) return timestamp.error();
  if (trusted_.timestamp) {
    if (timestamp->version < trusted_.timestamp->version) {
      return make_error(ErrorCode::verification, path + " is version " + std::to_string(timestamp->version) +
                                                     ", older than the trusted " +
                                                     std::to_string(trusted_.timestamp->version) + ": a rollback");
    }
    if (timestamp->snapshot.version < trusted_.timestamp->snapshot.version) {
      return make_error(ErrorCode::verification,
                        path + " names snapshot version " + std::to_string(timestamp->snapshot.version) +
                            ", older than the trusted " + std::to_string(trusted_.timestamp->snapshot.version) +
                            ": a rollback");
    }
  }
  if (auto status = check_expiry(timestamp->expires, start_time, path); !status) return status;
  if (auto status = keep(metadata_file_name(RoleName::timestamp), *bytes); !status) return status;
  trusted_.timestamp = std::move(timestamp).value();
  return ok_status();
}

Status TufClient::update_snapshot(RepositoryFetcher& fetcher, UnixTime start_time) {
  const MetaFile& expected = trusted_.timestamp->snapshot;
  const std::string path = metadata_path("snapshot", expected.version);
  auto by_snapshot_keys = [&](const SignedMetadata& metadata) {
    return verify_threshold(metadata, trusted_.root, RoleName::snapshot, path);
  };
  if (trusted_.snapshot && trusted_.snapshot->version == expected.version &&
      kept_listed("snapshot.json", expected, by_snapshot_keys)) {
    return check_expiry(trusted_.snapshot->expires, start_time, path);  // unchanged: not downloaded again
  }
  auto file = fetch_listed(fetcher, path, expected, limits_.snapshot_bytes, trusted_.root, RoleName::snapshot);
  if (!file) return file.error();
  auto snapshot = parse_snapshot(file->metadata.signed_part, path);
  if (!snapshot) return snapshot.error();
  if (snapshot->version != expected.version) {
    return make_error(ErrorCode::verification, path + " is version " + std::to_string(snapshot->version) +
                                                   ", the timestamp names version " + std::to_string(expected.version));
  }
  if (trusted_.snapshot) {
    for (const auto& [name, old_file] : trusted_.snapshot->meta) {
      auto found = snapshot->meta.find(name);
      if (found == snapshot->meta.end()) {
        return make_error(ErrorCode::verification, path + " no longer lists " + name);
      }
      if (found->second.version < old_file.version) {
        return make_error(ErrorCode::verification,
                          path + " names " + name + " version " + std::to_string(found->second.version) +
                              ", older than the trusted " + std::to_string(old_file.version) + ": a rollback");
      }
    }
  }
  if (auto status = check_expiry(snapshot->expires, start_time, path); !status) return status;
  if (auto status = keep("snapshot.json", file->bytes); !status) return status;
  trusted_.snapshot = std::move(snapshot).value();
  return ok_status();
}

Status TufClient::update_targets(RepositoryFetcher& fetcher, UnixTime start_time) {
  auto listed = trusted_.snapshot->meta.find("targets.json");
  if (listed == trusted_.snapshot->meta.end()) {
    return make_error(ErrorCode::verification, "the snapshot does not list targets.json");
  }
  const MetaFile& expected = listed->second;
  const std::string path = metadata_path("targets", expected.version);
  auto by_targets_keys = [&](const SignedMetadata& metadata) {
    return verify_threshold(metadata, trusted_.root, RoleName::targets, path);
  };
  if (trusted_.targets && trusted_.targets->version == expected.version &&
      kept_listed("targets.json", expected, by_targets_keys)) {
    return check_expiry(trusted_.targets->expires, start_time, path);  // unchanged: not downloaded again
  }
  auto file = fetch_listed(fetcher, path, expected, limits_.targets_bytes, trusted_.root, RoleName::targets);
  if (!file) return file.error();
  auto targets = parse_targets(file->metadata.signed_part, path);
  if (!targets) return targets.error();
  if (targets->version != expected.version) {
    return make_error(ErrorCode::verification, path + " is version " + std::to_string(targets->version) +
                                                   ", the snapshot names version " + std::to_string(expected.version));
  }
  if (auto status = check_expiry(targets->expires, start_time, path); !status) return status;
  if (auto status = keep("targets.json", file->bytes); !status) return status;
  trusted_.targets = std::move(targets).value();
  return ok_status();
}

Result<const TargetsMetadata*> TufClient::load_delegated(RepositoryFetcher& fetcher, const DelegatedRole& role,
                                                        const Delegations& delegator, UnixTime start_time) {
  if (auto found = trusted_.delegated.find(role.name); found != trusted_.delegated.end()) return &found->second;
  const std::string printable = crypto::printable_text(role.name);
  auto listed = trusted_.snapshot->meta.find(role.name + ".json");
  if (listed == trusted_.snapshot->meta.end()) {
    return make_error(ErrorCode::verification, "the snapshot does not list delegated role '" + printable + "'");
  }
  const MetaFile& expected = listed->second;
  const std::string encoded = encode_role_name(role.name);
  const std::string file_name = encoded + ".json";
  const std::string path = metadata_path(encoded, expected.version);
  auto by_delegated_keys = [&](const SignedMetadata& metadata) {
    return verify_delegated_threshold(metadata, delegator, role, path);
  };
  // The kept copy, if it is the listed version; else a download.
  if (auto kept = kept_listed(file_name, expected, by_delegated_keys)) {
    auto targets = parse_targets(kept->signed_part, file_name);
    if (targets && targets->version == expected.version) {
      if (auto status = check_expiry(targets->expires, start_time, path); !status) return status.error();
      return &trusted_.delegated.emplace(role.name, std::move(targets).value()).first->second;
    }
  }
  auto bytes = fetcher.fetch(path, expected.length.value_or(limits_.targets_bytes));
  if (!bytes) return bytes.error();
  if (!expected.hashes.empty()) {
    if (auto status = check_hashes(*bytes, expected.hashes, path); !status) return status.error();
  }
  auto metadata = parse_metadata_file(*bytes, path);
  if (!metadata) return metadata.error();
  if (auto status = by_delegated_keys(*metadata); !status) return status.error();
  auto targets = parse_targets(metadata->signed_part, path);
  if (!targets) return targets.error();
  if (targets->version != expected.version) {
    return make_error(ErrorCode::verification, path + " is version " + std::to_string(targets->version) +
                                                   ", the snapshot names version " + std::to_string(expected.version));
  }
  if (auto status = check_expiry(targets->expires, start_time, path); !status) return status.error();
  if (auto status = keep(file_name, *bytes); !status) return status.error();
  return &trusted_.delegated.emplace(role.name, std::move(targets).value()).first->second;
}

Result<std::optional<FoundTarget>> TufClient::find_target(RepositoryFetcher& fetcher, const std::string& path,
                                                          UnixTime start_time) {
  if (!trusted_.targets) return make_error(ErrorCode::invalid_argument, "find_target before a refresh");
  // (role, delegator) pairs; the top-level targets has none.
  struct Visit {
    std::string role;
    std::string delegator;
    const DelegatedRole* delegation = nullptr;
    const Delegations* delegations = nullptr;
  };
  std::vector<Visit> to_visit{{"targets", "", nullptr, nullptr}};
  std::set<std::pair<std::string, std::string>> visited;
  int budget = limits_.max_delegations;
  while (!to_visit.empty() && budget > 0) {
    Visit visit = std::move(to_visit.back());
    to_visit.pop_back();
    if (visited.contains({visit.role, visit.delegator})) continue;
    const TargetsMetadata* role_targets = &*trusted_.targets;
    if (visit.delegation) {
      auto loaded = load_delegated(fetcher, *visit.delegation, *visit.delegations, start_time);
      if (!loaded) return step_error("delegated role '" + crypto::printable_text(visit.role) + "'", loaded.error());
      role_targets = *loaded;
    }
    if (auto found = role_targets->targets.find(path); found != role_targets->targets.end()) {
      return std::optional<FoundTarget>(FoundTarget{found->second, visit.role});
    }
    visited.insert({visit.role, visit.delegator});
    --budget;
    if (!role_targets->delegations) continue;
    std::vector<Visit> children;
    for (const DelegatedRole& child : role_targets->delegations->roles) {
      if (!delegated_role_matches(child, path)) continue;
      children.push_back(Visit{child.name, visit.role, &child, &*role_targets->delegations});
      if (child.terminating) {
        to_visit.clear();  // nothing outside this delegation is searched for the path
        break;
      }
    }
    to_visit.insert(to_visit.end(), children.rbegin(), children.rend());
  }
  return std::optional<FoundTarget>();
}

Result<std::vector<std::uint8_t>> TufClient::download_target(RepositoryFetcher& fetcher, const std::string& path,
                                                             const TargetFile& target) const {
  std::string file_path = path;
  if (trusted_.root.consistent_snapshot && !target.hashes.empty()) {
    // Spec 5.7.3: the first hash (in the sorted order metadata is written in) before the file name.
    const auto slash = path.rfind('/');
    const std::size_t name_start = slash == std::string::npos ? 0 : slash + 1;
    file_path = path.substr(0, name_start) + target.hashes.begin()->second + "." + path.substr(name_start);
  }
  auto bytes = fetcher.fetch("targets/" + file_path, target.length);
  if (!bytes) return bytes.error();
  if (bytes->size() != target.length) {
    return make_error(ErrorCode::verification, "target " + path + " is " + std::to_string(bytes->size()) +
                                                   " bytes, the signed length is " + std::to_string(target.length));
  }
  if (auto status = check_hashes(*bytes, target.hashes, "target " + path); !status) return status.error();
  return bytes;
}

}  // namespace shoal::updater
