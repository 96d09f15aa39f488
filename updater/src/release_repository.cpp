#include "shoal/updater/release_repository.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/weights/weights_file.h"

namespace fs = std::filesystem;

namespace shoal::updater {
namespace {

constexpr std::size_t kMaxMetadataBytes = 64 << 20;
constexpr std::size_t kMaxTargetBytes = std::size_t{8} << 30;
constexpr UnixTime kDay = 24 * 60 * 60;

fs::path metadata_dir(const fs::path& repo) { return repo / "metadata"; }
fs::path staged_dir(const fs::path& repo) { return repo / "staged"; }
fs::path targets_dir(const fs::path& repo) { return repo / "targets"; }

Result<std::optional<SignedMetadata>> read_optional_metadata(const fs::path& path) {
  if (!fs::exists(path)) return std::optional<SignedMetadata>();
  auto bytes = base::read_file(path, kMaxMetadataBytes);
  if (!bytes) return bytes.error();
  auto metadata = parse_metadata_file(base::text_bytes(*bytes), path.string());
  if (!metadata) return metadata.error();
  return std::optional<SignedMetadata>(std::move(metadata).value());
}

Result<SignedMetadata> read_metadata(const fs::path& path) {
  auto metadata = read_optional_metadata(path);
  if (!metadata) return metadata.error();
  if (!*metadata) return make_error(ErrorCode::not_found, path.string() + " does not exist");
  return std::move(**metadata);
}

// A role's parsed signed part from `path`, or nullopt if the file does not exist.
template <typename Parsed, typename Parse>
Result<std::optional<Parsed>> read_optional_role(const fs::path& path, Parse parse) {
  auto file = read_optional_metadata(path);
  if (!file) return file.error();
  if (!*file) return std::optional<Parsed>();
  auto parsed = parse((*file)->signed_part, path.string());
  if (!parsed) return parsed.error();
  return std::optional<Parsed>(std::move(parsed).value());
}

Status write_metadata(const fs::path& path, const SignedMetadata& metadata) {
  return base::write_file_durably(path, format_metadata_file(metadata));
}

Result<std::map<std::string, TufKey>> apply_key_choices(
    RootMetadata& root, const std::map<RoleName, RoleKeyChoice>& choices) {
  for (const auto& [role, choice] : choices) {
    if (choice.keys.empty()) {
      return make_error(ErrorCode::invalid_argument, "the " + std::string(role_name(role)) + " role needs a key");
    }
    if (choice.threshold < 1 || choice.threshold > choice.keys.size()) {
      return make_error(ErrorCode::invalid_argument,
                        "the " + std::string(role_name(role)) + " threshold " + std::to_string(choice.threshold) +
                            " must be 1 to its " + std::to_string(choice.keys.size()) + " key(s)");
    }
    RoleKeys role_keys;
    role_keys.threshold = choice.threshold;
    for (const auto& key : choice.keys) {
      const std::string id = key_id(key.ed25519());
      if (std::find(role_keys.keyids.begin(), role_keys.keyids.end(), id) != role_keys.keyids.end()) {
        return make_error(ErrorCode::invalid_argument,
                          "the " + std::string(role_name(role)) + " role names key " + id + " twice");
      }
      role_keys.keyids.push_back(id);
    }
    root.roles[role] = std::move(role_keys);
  }
  // Keep exactly the keys some role uses.
  std::map<std::string, TufKey> known = root.keys;
  for (const auto& [role, choice] : choices) {
    for (const auto& key : choice.keys) known[key_id(key.ed25519())] = TufKey::from_ed25519(key.ed25519());
  }
  root.keys.clear();
  for (const auto& [role, role_keys] : root.roles) {
    for (const auto& id : role_keys.keyids) root.keys[id] = known.at(id);
  }
  return root.keys;
}

// Makes target `path` also reachable as "<dir>/<first hash>.<name>", the
// name clients use with consistent snapshots: a hard link, so the bytes are
// stored once (a copy where the file system has no links). Made durably,
// before any metadata names it.
Status link_by_hash(const fs::path& targets, const std::string& path, const TargetFile& target) {
  if (target.hashes.empty()) return ok_status();
  const fs::path plain = targets / path;
  const fs::path by_hash = plain.parent_path() / (target.hashes.begin()->second + "." + plain.filename().string());
  std::error_code error;
  if (fs::exists(by_hash, error)) return ok_status();  // the name is its content's hash
  fs::create_hard_link(plain, by_hash, error);
  if (error) {
    auto bytes = base::read_file(plain, kMaxTargetBytes);
    if (!bytes) return bytes.error();
    return base::write_file_durably(by_hash, *bytes);
  }
  return base::Env::standard().sync_directory(by_hash.parent_path());
}

bool valid_model_name(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

}  // namespace

Result<ReleaseRepository> ReleaseRepository::init(const fs::path& dir, const std::map<RoleName, RoleKeyChoice>& keys,
                                                  UnixTime now, const ExpiryDays& expiry, bool consistent_snapshot) {
  if (fs::exists(staged_dir(dir) / "root.json") || fs::exists(metadata_dir(dir) / "root.json")) {
    return make_error(ErrorCode::invalid_argument, dir.string() + " already holds a release repository");
  }
  for (RoleName role : kAllRoles) {
    if (!keys.contains(role)) {
      return make_error(ErrorCode::invalid_argument, "init needs keys for the " + std::string(role_name(role)) + " role");
    }
  }
  RootMetadata root;
  root.version = 1;
  root.expires = now + expiry.root * kDay;
  root.consistent_snapshot = consistent_snapshot;
  if (auto applied = apply_key_choices(root, keys); !applied) return applied.error();
  std::error_code error;
  for (const fs::path& sub : {metadata_dir(dir), staged_dir(dir), targets_dir(dir)}) {
    fs::create_directories(sub, error);
    if (error) return make_error(ErrorCode::io, "cannot create " + sub.string() + ": " + error.message());
  }
  ReleaseRepository repository(dir);
  repository.expiry_ = expiry;
  repository.staged_root_ = root;
  repository.staged_root_file_.signed_part = to_json(root);
  repository.staged_targets_.version = 1;
  repository.staged_targets_.expires = now + expiry.targets * kDay;
  repository.staged_targets_file_.signed_part = to_json(repository.staged_targets_);
  if (auto status = repository.save_staged_root(); !status) return status.error();
  if (auto status = repository.save_staged_targets(); !status) return status.error();
  return repository;
}

Result<ReleaseRepository> ReleaseRepository::open(const fs::path& dir) {
  ReleaseRepository repository(dir);
  if (auto status = repository.load(); !status) return status.error();
  return repository;
}

Status ReleaseRepository::load() {
  const fs::path root_path = staged_dir(dir_) / "root.json";
  if (!fs::exists(root_path)) {
    return make_error(ErrorCode::not_found, dir_.string() + " is not a release repository (no staged/root.json)");
  }
  auto root_file = read_metadata(root_path);
  if (!root_file) return root_file.error();
  auto root = parse_root(root_file->signed_part, root_path.string());
  if (!root) return root.error();
  const fs::path targets_path = staged_dir(dir_) / "targets.json";
  auto targets_file = read_metadata(targets_path);
  if (!targets_file) return targets_file.error();
  auto targets = parse_targets(targets_file->signed_part, targets_path.string());
  if (!targets) return targets.error();
  staged_root_file_ = std::move(root_file).value();
  staged_root_ = std::move(root).value();
  staged_targets_file_ = std::move(targets_file).value();
  staged_targets_ = std::move(targets).value();
  // The delegated roles reachable from targets, each once.
  std::vector<const TargetsMetadata*> to_read{&staged_targets_};
  while (!to_read.empty()) {
    const TargetsMetadata* delegator = to_read.back();
    to_read.pop_back();
    if (!delegator->delegations) continue;
    for (const auto& role : delegator->delegations->roles) {
      if (staged_delegated_.contains(role.name)) continue;
      const fs::path path = staged_dir(dir_) / (encode_role_name(role.name) + ".json");
      auto file = read_metadata(path);
      if (!file) return file.error();
      auto parsed = parse_targets(file->signed_part, path.string());
      if (!parsed) return parsed.error();
      staged_delegated_files_[role.name] = std::move(file).value();
      to_read.push_back(&staged_delegated_.emplace(role.name, std::move(parsed).value()).first->second);
    }
  }
  return ok_status();
}

Result<std::pair<TargetsMetadata*, SignedMetadata*>> ReleaseRepository::staged_role(const std::string& role) {
  if (role == "targets") return std::pair{&staged_targets_, &staged_targets_file_};
  auto found = staged_delegated_.find(role);
  if (found == staged_delegated_.end()) {
    return make_error(ErrorCode::not_found, "no role '" + crypto::printable_text(role) + "' is delegated in " +
                                                dir_.string() + " (see shoal-release delegate)");
  }
  return std::pair{&found->second, &staged_delegated_files_.at(role)};
}

Status ReleaseRepository::save_staged(const std::string& role) {
  if (role == "targets") return save_staged_targets();
  return write_metadata(staged_dir(dir_) / (encode_role_name(role) + ".json"), staged_delegated_files_.at(role));
}

std::optional<std::pair<std::string, DelegatedRole>> ReleaseRepository::delegation_of(const std::string& role) const {
  auto search = [&](const std::string& name, const TargetsMetadata& targets)
      -> std::optional<std::pair<std::string, DelegatedRole>> {
    if (!targets.delegations) return std::nullopt;
    for (const auto& delegated : targets.delegations->roles) {
      if (delegated.name == role) return std::pair{name, delegated};
    }
    return std::nullopt;
  };
  if (auto found = search("targets", staged_targets_)) return found;
  for (const auto& [name, targets] : staged_delegated_) {
    if (auto found = search(name, targets)) return found;
  }
  return std::nullopt;
}

Status ReleaseRepository::verify_delegated() const {
  auto check = [&](const TargetsMetadata& delegator) -> Status {
    if (!delegator.delegations) return ok_status();
    for (const auto& role : delegator.delegations->roles) {
      const auto& file = staged_delegated_files_.at(role.name);
      if (auto status = verify_delegated_threshold(file, *delegator.delegations, role,
                                                   "staged " + crypto::printable_text(role.name));
          !status) {
        return status;
      }
    }
    return ok_status();
  };
  if (auto status = check(staged_targets_); !status) return status;
  for (const auto& [name, targets] : staged_delegated_) {
    if (auto status = check(targets); !status) return status;
  }
  return ok_status();
}

Status ReleaseRepository::save_staged_root() {
  return write_metadata(staged_dir(dir_) / "root.json", staged_root_file_);
}

Status ReleaseRepository::save_staged_targets() {
  return write_metadata(staged_dir(dir_) / "targets.json", staged_targets_file_);
}

Result<std::optional<RootMetadata>> ReleaseRepository::published_root() const {
  return read_optional_role<RootMetadata>(metadata_dir(dir_) / "root.json", parse_root);
}

Result<std::optional<RootMetadata>> ReleaseRepository::previous_root() const {
  if (staged_root_.version == 1) return std::optional<RootMetadata>();
  const fs::path path = metadata_dir(dir_) / (std::to_string(staged_root_.version - 1) + ".root.json");
  auto file = read_metadata(path);
  if (!file) return file.error();
  auto root = parse_root(file->signed_part, path.string());
  if (!root) return root.error();
  return std::optional<RootMetadata>(std::move(root).value());
}

Status ReleaseRepository::begin_targets_change(UnixTime now) { return begin_change("targets", staged_targets_, now); }

Status ReleaseRepository::begin_change(const std::string& role, TargetsMetadata& targets, UnixTime now) {
  auto published = read_optional_role<TargetsMetadata>(metadata_dir(dir_) / (encode_role_name(role) + ".json"),
                                                       parse_targets);
  if (!published) return published.error();
  if (*published && (*published)->version >= targets.version) targets.version = (*published)->version + 1;
  targets.expires = now + expiry_.targets * kDay;
  return ok_status();
}

Status ReleaseRepository::delegate(const DelegationChoice& choice, const std::string& delegator, UnixTime now) {
  const std::string name = crypto::printable_text(choice.name);
  if (choice.name.empty() || choice.name.size() > 255 || parse_role_name(choice.name) || choice.name == delegator) {
    return make_error(ErrorCode::invalid_argument, "role name '" + name +
                                                       "' must be 1 to 255 bytes, not a top-level role's name "
                                                       "and not its delegator's");
  }
  if (choice.keys.empty() || choice.threshold < 1 || choice.threshold > choice.keys.size()) {
    return make_error(ErrorCode::invalid_argument, "delegation '" + name + "' needs keys and a threshold of 1 to " +
                                                       std::to_string(choice.keys.size()));
  }
  if (choice.paths.empty() == choice.path_hash_prefixes.empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "delegation '" + name + "' needs paths or path hash prefixes, not both");
  }
  for (const auto& prefix : choice.path_hash_prefixes) {
    if (prefix.empty() || prefix.size() > 64 || prefix.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return make_error(ErrorCode::invalid_argument, "path hash prefix '" + crypto::printable_text(prefix) +
                                                         "' must be lower-case hex, at most 64 digits");
    }
  }
  auto staged = staged_role(delegator);
  if (!staged) return staged.error();
  auto [targets, file] = *staged;
  if (auto status = begin_change(delegator, *targets, now); !status) return status;
  if (!targets->delegations) targets->delegations.emplace();
  Delegations& delegations = *targets->delegations;
  DelegatedRole role;
  role.name = choice.name;
  role.keys.threshold = choice.threshold;
  role.terminating = choice.terminating;
  role.paths = choice.paths;
  role.path_hash_prefixes = choice.path_hash_prefixes;
  for (const auto& key : choice.keys) {
    const std::string id = key_id(key.ed25519());
    if (std::find(role.keys.keyids.begin(), role.keys.keyids.end(), id) != role.keys.keyids.end()) {
      return make_error(ErrorCode::invalid_argument, "delegation '" + name + "' names key " + id + " twice");
    }
    role.keys.keyids.push_back(id);
    delegations.keys[id] = TufKey::from_ed25519(key.ed25519());
  }
  auto existing = std::find_if(delegations.roles.begin(), delegations.roles.end(),
                               [&](const DelegatedRole& other) { return other.name == choice.name; });
  if (existing != delegations.roles.end()) {
    *existing = std::move(role);
  } else {
    delegations.roles.push_back(std::move(role));
  }
  // Keep exactly the keys some delegation uses.
  std::set<std::string> used;
  for (const auto& delegated : delegations.roles) used.insert(delegated.keys.keyids.begin(), delegated.keys.keyids.end());
  std::erase_if(delegations.keys, [&](const auto& entry) { return !used.contains(entry.first); });
  file->signed_part = to_json(*targets);
  file->signatures.clear();
  if (auto status = save_staged(delegator); !status) return status;

  if (!staged_delegated_.contains(choice.name)) {
    TargetsMetadata empty;
    if (auto status = begin_change(choice.name, empty, now); !status) return status;
    staged_delegated_files_[choice.name] = SignedMetadata{to_json(empty), {}};
    staged_delegated_.emplace(choice.name, std::move(empty));
    if (auto status = save_staged(choice.name); !status) return status;
  }
  return ok_status();
}

Status ReleaseRepository::add_target(const std::string& role, const std::string& path,
                                     std::span<const std::uint8_t> bytes, const nlohmann::json& custom, UnixTime now) {
  if (!is_safe_repository_path(path)) {
    return make_error(ErrorCode::invalid_argument,
                      "target path '" + crypto::printable_text(path) + "' is not a relative path inside the repository");
  }
  if (role != "targets") {
    auto delegation = delegation_of(role);
    if (delegation && !delegated_role_matches(delegation->second, path)) {
      return make_error(ErrorCode::permission, "role '" + crypto::printable_text(role) + "' is not delegated path '" +
                                                   crypto::printable_text(path) + "'");
    }
  }
  auto staged = staged_role(role);
  if (!staged) return staged.error();
  auto [targets, file] = *staged;
  const fs::path target_path = targets_dir(dir_) / path;
  std::error_code error;
  fs::create_directories(target_path.parent_path(), error);
  if (error) return make_error(ErrorCode::io, "cannot create " + target_path.parent_path().string() + ": " + error.message());
  if (auto status = base::write_file_durably(target_path, bytes); !status) return status;
  if (auto status = begin_change(role, *targets, now); !status) return status;
  TargetFile target;
  target.length = bytes.size();
  target.hashes = file_hashes(bytes);
  target.custom = custom.is_object() ? custom : nlohmann::json::object();
  targets->targets[path] = std::move(target);
  file->signed_part = to_json(*targets);
  file->signatures.clear();
  return save_staged(role);
}

Status ReleaseRepository::sign_delegated(const std::string& role, const crypto::IdentityKeyPair& key) {
  auto delegation = delegation_of(role);
  if (!delegation) {
    return make_error(ErrorCode::not_found, "no role '" + crypto::printable_text(role) + "' is delegated");
  }
  const std::string id = key_id(key.public_identity().ed25519());
  const auto& ids = delegation->second.keys.keyids;
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
    return make_error(ErrorCode::permission, "key " + id + " is not one of the keys " + delegation->first +
                                                 " delegates role '" + crypto::printable_text(role) + "' to");
  }
  if (auto status = add_signature(staged_delegated_files_.at(role), key); !status) return status;
  return save_staged(role);
}

Result<AddedRelease> ReleaseRepository::add(const weights::Weights& new_version, const std::string& model,
                                            std::size_t delta_count, UnixTime now,
                                            std::optional<float> lossy_error_bound) {
  if (!valid_model_name(model)) {
    return make_error(ErrorCode::invalid_argument,
                      "model name '" + model + "' must be 1 to 64 of a-z, 0-9, '-' and '_' (it names a directory)");
  }
  auto existing = release_files(staged_targets_, model, "staged/targets.json");
  if (!existing) return existing.error();
  if (!existing->empty() && existing->front().version >= new_version.version()) {
    return make_error(ErrorCode::invalid_argument,
                      model + " version " + std::to_string(new_version.version()) +
                          " is not newer than the released " + std::to_string(existing->front().version) +
                          ": releases never go backwards");
  }
  auto read_full = [&](const ReleaseFile& file) { return weights::read_weights_file(targets_dir(dir_) / file.path); };

  AddedRelease added;
  weights::Weights weights = new_version;
  std::optional<float> step;
  auto newest_full = std::find_if(existing->begin(), existing->end(),
                                  [](const ReleaseFile& file) { return file.kind == ReleaseFileKind::full; });
  if (lossy_error_bound && newest_full != existing->end()) {
    auto base = read_full(*newest_full);
    if (!base) return base.error();
    auto quantized = quantize_towards(*base, new_version, *lossy_error_bound);
    if (!quantized) return quantized.error();
    weights = std::move(quantized->weights);
    step = quantized->step;
    added.lossy_max_error = quantized->max_error;
  }
  if (auto status = begin_targets_change(now); !status) return status.error();

  const std::vector<std::uint8_t> full_bytes = weights::encode_weights(weights);
  added.full.path = full_file_path(model, weights.version());
  added.full.length = full_bytes.size();
  added.full.model = model;
  added.full.version = weights.version();
  added.full.values_hash = values_hash(weights);
  if (added.lossy_max_error) {
    char bound[32];
    std::snprintf(bound, sizeof bound, "%g", *lossy_error_bound);
    added.full.lossy_error_bound = bound;
  }
  std::vector<std::pair<ReleaseFile, std::vector<std::uint8_t>>> files;
  files.emplace_back(added.full, full_bytes);

  std::size_t bases = 0;
  for (const ReleaseFile& older : *existing) {
    if (older.kind != ReleaseFileKind::full || bases == delta_count) continue;
    ++bases;
    auto base = read_full(older);
    if (!base) return base.error();
    auto delta = encode_delta(*base, weights, 19, step);
    if (!delta) {
      added.skipped.push_back("no delta from version " + std::to_string(older.version) + ": " + delta.error().message);
      continue;
    }
    if (static_cast<double>(delta->size()) >= kMaxDeltaFraction * static_cast<double>(full_bytes.size())) {
      added.skipped.push_back("no delta from version " + std::to_string(older.version) + ": " +
                              std::to_string(delta->size()) + " bytes, not enough smaller than the full file's " +
                              std::to_string(full_bytes.size()));
      continue;
    }
    ReleaseFile file = added.full;
    file.path = delta_file_path(model, weights.version(), older.version);
    file.length = delta->size();
    file.kind = ReleaseFileKind::delta;
    file.base_version = older.version;
    file.base_values_hash = older.values_hash;
    added.deltas.push_back(file);
    files.emplace_back(file, std::move(delta).value());
  }

  // Target files first, then the metadata that names them.
  for (const auto& [file, bytes] : files) {
    const fs::path path = targets_dir(dir_) / file.path;
    std::error_code error;
    fs::create_directories(path.parent_path(), error);
    if (error) return make_error(ErrorCode::io, "cannot create " + path.parent_path().string() + ": " + error.message());
    if (auto status = base::write_file_durably(path, bytes); !status) return status.error();
    TargetFile target;
    target.length = bytes.size();
    target.hashes = file_hashes(bytes);
    target.custom = release_custom(file);
    staged_targets_.targets[file.path] = std::move(target);
  }
  staged_targets_file_.signed_part = to_json(staged_targets_);
  staged_targets_file_.signatures.clear();
  if (auto status = save_staged_targets(); !status) return status.error();
  return added;
}

Status ReleaseRepository::sign(RoleName role, const crypto::IdentityKeyPair& key) {
  const std::string id = key_id(key.public_identity().ed25519());
  auto holds = [&](const RootMetadata& root, RoleName of) {
    const auto& ids = root.roles.at(of).keyids;
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  if (role == RoleName::root) {
    auto previous = previous_root();
    if (!previous) return previous.error();
    if (!holds(staged_root_, RoleName::root) && !(*previous && holds(**previous, RoleName::root))) {
      return make_error(ErrorCode::permission, "key " + id + " is not a root key of root version " +
                                                   std::to_string(staged_root_.version) + " or the one before");
    }
    if (auto status = add_signature(staged_root_file_, key); !status) return status;
    return save_staged_root();
  }
  if (role == RoleName::targets) {
    if (!holds(staged_root_, RoleName::targets)) {
      return make_error(ErrorCode::permission, "key " + id + " is not a targets key of root version " +
                                                   std::to_string(staged_root_.version));
    }
    if (auto status = add_signature(staged_targets_file_, key); !status) return status;
    return save_staged_targets();
  }
  return make_error(ErrorCode::invalid_argument, "snapshot and timestamp are signed by publish, with the online keys");
}

namespace {

Status check_online_keys(const RootMetadata& root, const crypto::IdentityKeyPair& snapshot_key,
                         const crypto::IdentityKeyPair& timestamp_key) {
  for (const auto& [role, key] : {std::pair{RoleName::snapshot, &snapshot_key}, {RoleName::timestamp, &timestamp_key}}) {
    const auto& ids = root.roles.at(role).keyids;
    if (std::find(ids.begin(), ids.end(), key_id(key->public_identity().ed25519())) == ids.end()) {
      return make_error(ErrorCode::permission, "the " + std::string(role_name(role)) +
                                                   " key given is not one of root version " +
                                                   std::to_string(root.version) + "'s " +
                                                   std::string(role_name(role)) + " keys");
    }
  }
  return ok_status();
}

}  // namespace

Status ReleaseRepository::write_targets_role(const std::string& role, const TargetsMetadata& targets,
                                             const std::string& text, bool consistent,
                                             std::map<std::string, MetaFile>& listed) {
  const fs::path metadata = metadata_dir(dir_);
  const std::string encoded = encode_role_name(role);
  if (consistent) {
    for (const auto& [path, target] : targets.targets) {
      if (auto status = link_by_hash(targets_dir(dir_), path, target); !status) return status;
    }
    if (auto status = base::write_file_durably(metadata / (std::to_string(targets.version) + "." + encoded + ".json"),
                                               text);
        !status) {
      return status;
    }
  }
  if (auto status = base::write_file_durably(metadata / (encoded + ".json"), text); !status) return status;
  listed[role + ".json"] = MetaFile{targets.version, text.size(), file_hashes(base::text_bytes(text))};
  return ok_status();
}

Status ReleaseRepository::write_snapshot_and_timestamp(const std::map<std::string, MetaFile>& listed, bool consistent,
                                                       const crypto::IdentityKeyPair& snapshot_key,
                                                       const crypto::IdentityKeyPair& timestamp_key, UnixTime now) {
  const fs::path metadata = metadata_dir(dir_);
  // Snapshot and timestamp: each one version on from the published one.
  auto next_version = [&](RoleName role) -> Result<std::uint64_t> {
    auto file = read_optional_metadata(metadata / metadata_file_name(role));
    if (!file) return file.error();
    if (!*file) return std::uint64_t{1};
    auto version = (*file)->signed_part.find("version");
    if (version == (*file)->signed_part.end() || !version->is_number_unsigned()) {
      return make_error(ErrorCode::corrupt, (metadata / metadata_file_name(role)).string() + " has no version");
    }
    return version->get<std::uint64_t>() + 1;
  };
  auto snapshot_version = next_version(RoleName::snapshot);
  if (!snapshot_version) return snapshot_version.error();
  SnapshotMetadata snapshot;
  snapshot.version = *snapshot_version;
  snapshot.expires = now + expiry_.snapshot * kDay;
  // A role listed once stays listed (clients refuse a snapshot that drops one).
  auto published_snapshot = read_optional_role<SnapshotMetadata>(metadata / "snapshot.json", parse_snapshot);
  if (!published_snapshot) return published_snapshot.error();
  if (*published_snapshot) snapshot.meta = (*published_snapshot)->meta;
  for (const auto& [name, file] : listed) snapshot.meta[name] = file;
  SignedMetadata snapshot_file{to_json(snapshot), {}};
  if (auto status = add_signature(snapshot_file, snapshot_key); !status) return status;
  const std::string snapshot_text = format_metadata_file(snapshot_file);
  if (consistent) {
    if (auto status = base::write_file_durably(metadata / (std::to_string(snapshot.version) + ".snapshot.json"),
                                               snapshot_text);
        !status) {
      return status;
    }
  }
  if (auto status = base::write_file_durably(metadata / "snapshot.json", snapshot_text); !status) return status;

  auto timestamp_version = next_version(RoleName::timestamp);
  if (!timestamp_version) return timestamp_version.error();
  TimestampMetadata timestamp;
  timestamp.version = *timestamp_version;
  timestamp.expires = now + expiry_.timestamp * kDay;
  timestamp.snapshot = MetaFile{snapshot.version, snapshot_text.size(), file_hashes(base::text_bytes(snapshot_text))};
  SignedMetadata timestamp_file{to_json(timestamp), {}};
  if (auto status = add_signature(timestamp_file, timestamp_key); !status) return status;
  return base::write_file_durably(metadata / "timestamp.json", format_metadata_file(timestamp_file));
}

Status ReleaseRepository::publish(const crypto::IdentityKeyPair& snapshot_key,
                                  const crypto::IdentityKeyPair& timestamp_key, UnixTime now) {
  // The root: its own threshold, and the previous root's for a rotation.
  if (auto status = verify_threshold(staged_root_file_, staged_root_, RoleName::root, "staged root"); !status) {
    return status;
  }
  auto previous = previous_root();
  if (!previous) return previous.error();
  if (*previous) {
    if (auto status = verify_threshold(staged_root_file_, **previous, RoleName::root,
                                       "staged root (signatures of the previous root's keys)");
        !status) {
      return status;
    }
  }
  if (auto status = verify_threshold(staged_targets_file_, staged_root_, RoleName::targets, "staged targets");
      !status) {
    return status;
  }
  if (auto status = verify_delegated(); !status) return status;
  if (auto status = check_online_keys(staged_root_, snapshot_key, timestamp_key); !status) return status;
  const std::string root_text = format_metadata_file(staged_root_file_);
  const fs::path metadata = metadata_dir(dir_);
  if (auto status = base::write_file_durably(metadata / (std::to_string(staged_root_.version) + ".root.json"),
                                             root_text);
      !status) {
    return status;
  }
  if (auto status = base::write_file_durably(metadata / "root.json", root_text); !status) return status;
  // Every targets role's files, then the snapshot that lists them, then the timestamp.
  const bool consistent = staged_root_.consistent_snapshot;
  std::map<std::string, MetaFile> listed;
  if (auto status = write_targets_role("targets", staged_targets_, format_metadata_file(staged_targets_file_),
                                       consistent, listed);
      !status) {
    return status;
  }
  for (const auto& [name, targets] : staged_delegated_) {
    if (auto status = write_targets_role(name, targets, format_metadata_file(staged_delegated_files_.at(name)),
                                         consistent, listed);
        !status) {
      return status;
    }
  }
  return write_snapshot_and_timestamp(listed, consistent, snapshot_key, timestamp_key, now);
}

Status ReleaseRepository::publish_delegated(const std::string& role, const crypto::IdentityKeyPair& snapshot_key,
                                            const crypto::IdentityKeyPair& timestamp_key, UnixTime now) {
  auto root = published_root();
  if (!root) return root.error();
  if (!*root) return make_error(ErrorCode::invalid_argument, "publish the repository once before its roles alone");
  auto delegation = delegation_of(role);
  if (!delegation) {
    return make_error(ErrorCode::not_found, "no role '" + crypto::printable_text(role) + "' is delegated");
  }
  // Checked against the delegation devices have, the published one.
  const fs::path delegator_path = metadata_dir(dir_) / (encode_role_name(delegation->first) + ".json");
  auto delegator = read_optional_role<TargetsMetadata>(delegator_path, parse_targets);
  if (!delegator) return delegator.error();
  const DelegatedRole* published_role = nullptr;
  if (*delegator && (*delegator)->delegations) {
    for (const auto& candidate : (*delegator)->delegations->roles) {
      if (candidate.name == role) published_role = &candidate;
    }
  }
  if (!published_role) {
    return make_error(ErrorCode::not_found, "the published " + delegation->first + " does not delegate role '" +
                                                crypto::printable_text(role) + "' yet: publish the delegation first");
  }
  const SignedMetadata& file = staged_delegated_files_.at(role);
  if (auto status = verify_delegated_threshold(file, *(*delegator)->delegations, *published_role,
                                               "staged " + crypto::printable_text(role));
      !status) {
    return status;
  }
  if (auto status = check_online_keys(**root, snapshot_key, timestamp_key); !status) return status;
  std::map<std::string, MetaFile> listed;
  const bool consistent = (*root)->consistent_snapshot;
  if (auto status = write_targets_role(role, staged_delegated_.at(role), format_metadata_file(file), consistent, listed);
      !status) {
    return status;
  }
  return write_snapshot_and_timestamp(listed, consistent, snapshot_key, timestamp_key, now);
}

Status ReleaseRepository::rotate(const std::map<RoleName, RoleKeyChoice>& changes, UnixTime now) {
  auto published = published_root();
  if (!published) return published.error();
  if (!*published) return make_error(ErrorCode::invalid_argument, "publish root version 1 before rotating it");
  if (staged_root_.version == (*published)->version) staged_root_.version += 1;
  staged_root_.expires = now + expiry_.root * kDay;
  if (auto applied = apply_key_choices(staged_root_, changes); !applied) return applied.error();
  staged_root_file_.signed_part = to_json(staged_root_);
  staged_root_file_.signatures.clear();
  return save_staged_root();
}

}  // namespace shoal::updater
