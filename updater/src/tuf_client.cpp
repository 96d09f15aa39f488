#include "shoal/updater/tuf_client.h"

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"

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

Status TufClient::keep(RoleName role, std::span<const std::uint8_t> bytes) const {
  return base::write_file_durably(trust_dir_ / metadata_file_name(role), bytes, 0644, *env_);
}

bool TufClient::kept_is_listed(RoleName role, const MetaFile& listed, std::uint64_t trusted_version) const {
  if (trusted_version != listed.version) return false;
  auto bytes = base::read_file(trust_dir_ / metadata_file_name(role), 64 << 20, *env_);
  if (!bytes) return false;
  const auto kept = base::text_bytes(*bytes);
  if (listed.length && kept.size() != *listed.length) return false;
  if (!listed.hashes.empty() && !check_hashes(kept, listed.hashes, metadata_file_name(role))) return false;
  auto metadata = parse_metadata_file(kept, metadata_file_name(role));
  return metadata && verify_threshold(*metadata, trusted_.root, role, metadata_file_name(role));
}

void TufClient::forget(RoleName role) {
  (void)env_->remove_file(trust_dir_ / metadata_file_name(role));  // absent is fine: forgotten either way
  if (role == RoleName::timestamp) trusted_.timestamp.reset();
  if (role == RoleName::snapshot) trusted_.snapshot.reset();
}

Result<TargetsMetadata> TufClient::refresh(RepositoryFetcher& fetcher, UnixTime start_time) {
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
    if (auto status = keep(RoleName::root, *bytes); !status) return status;
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
  if (auto status = keep(RoleName::timestamp, *bytes); !status) return status;
  trusted_.timestamp = std::move(timestamp).value();
  return ok_status();
}

Status TufClient::update_snapshot(RepositoryFetcher& fetcher, UnixTime start_time) {
  const std::string path = "metadata/snapshot.json";
  const MetaFile& expected = trusted_.timestamp->snapshot;
  if (trusted_.snapshot && kept_is_listed(RoleName::snapshot, expected, trusted_.snapshot->version)) {
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
  if (auto status = keep(RoleName::snapshot, file->bytes); !status) return status;
  trusted_.snapshot = std::move(snapshot).value();
  return ok_status();
}

Status TufClient::update_targets(RepositoryFetcher& fetcher, UnixTime start_time) {
  const std::string path = "metadata/targets.json";
  auto listed = trusted_.snapshot->meta.find("targets.json");
  if (listed == trusted_.snapshot->meta.end()) {
    return make_error(ErrorCode::verification, "the snapshot does not list targets.json");
  }
  const MetaFile& expected = listed->second;
  if (trusted_.targets && kept_is_listed(RoleName::targets, expected, trusted_.targets->version)) {
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
  if (auto status = keep(RoleName::targets, file->bytes); !status) return status;
  trusted_.targets = std::move(targets).value();
  return ok_status();
}

Result<std::vector<std::uint8_t>> TufClient::download_target(RepositoryFetcher& fetcher, const std::string& path,
                                                             const TargetFile& target) const {
  auto bytes = fetcher.fetch("targets/" + path, target.length);
  if (!bytes) return bytes.error();
  if (bytes->size() != target.length) {
    return make_error(ErrorCode::verification, "target " + path + " is " + std::to_string(bytes->size()) +
                                                   " bytes, the signed length is " + std::to_string(target.length));
  }
  if (auto status = check_hashes(*bytes, target.hashes, "target " + path); !status) return status.error();
  return bytes;
}

}  // namespace shoal::updater
