// shoal-release: the operator's tool for signed model releases.
//
//   shoal-release init    --repo releases --root-key root.pub --targets-key targets.pub
//                         --snapshot-key online.pub --timestamp-key online.pub      (one command)
//   shoal-release sign    --repo releases --role root --key root.key
//   shoal-release add     --repo releases --model cnn --weights v12.weights --deltas 3
//   shoal-release sign    --repo releases --role targets --key targets.key
//   shoal-release publish --repo releases --snapshot-key online.key --timestamp-key online.key
//   shoal-release rotate  --repo releases --root-key new-root.pub      # then sign with old and new
//   shoal-release delegate --repo releases --role team --key team.pub --paths 'team/*'
//   shoal-release add-target --repo releases --role team --path team/notes.txt --file notes.txt
//   shoal-release sign    --repo releases --role team --key team.key   # a delegated role
//   shoal-release rollout start cnn 12 --repo releases --stages canary,1,10,50,100 --soak 1h
//                         --enrolment enrolled.txt --rollout-key rollout.key --snapshot-key online.key
//                         --timestamp-key online.key                   # also: advance, halt, status
//   shoal-release verify  --repo releases                              # check it as a fresh device would
//   shoal-release inspect --repo releases                              # explain it in words
//
// Keys are shoal-keys files of role "release": public (.pub) files name a
// role's keys, secret (.key) files sign.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/enrolment.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/updater/release_repository.h"
#include "shoal/updater/rollout_control.h"
#include "shoal/updater/tuf_client.h"
#include "shoal/weights/weights_file.h"

namespace fs = std::filesystem;
using namespace shoal;
using namespace shoal::updater;

namespace {

int fail(const Error& error) {
  std::cerr << "shoal-release: " << error.describe() << "\n";
  return 1;
}

// A role's keys and threshold as given on the command line.
struct RoleOptions {
  std::vector<fs::path> keys;
  std::uint32_t threshold = 1;
};

void add_role_options(CLI::App* command, std::map<RoleName, RoleOptions>& roles, bool required) {
  for (RoleName role : kAllRoles) {
    const std::string name(role_name(role));
    auto* keys = command->add_option("--" + name + "-key", roles[role].keys,
                                     "public key file of a " + name + " key (repeat for several)");
    if (required) keys->required();
    command->add_option("--" + name + "-threshold", roles[role].threshold,
                        "signatures needed from " + name + " keys")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
  }
}

Result<std::map<RoleName, RoleKeyChoice>> load_role_keys(const std::map<RoleName, RoleOptions>& roles) {
  std::map<RoleName, RoleKeyChoice> choices;
  for (const auto& [role, options] : roles) {
    if (options.keys.empty()) continue;
    RoleKeyChoice choice;
    choice.threshold = options.threshold;
    for (const auto& path : options.keys) {
      auto key = crypto::load_public_key(path, crypto::KeyRole::release);
      if (!key) return key.error();
      choice.keys.push_back(key->identity);
    }
    choices[role] = std::move(choice);
  }
  return choices;
}

Result<crypto::IdentityKeyPair> load_signing_key(const fs::path& path) {
  auto key = crypto::load_identity_key(path, crypto::KeyRole::release);
  if (!key) return key.error();
  return key->keys;
}

// The id shoal-keys shows for a key (not TUF's key id, which only the metadata uses).
std::string shown_id(const RootMetadata& root, const std::string& keyid) {
  auto key = root.keys.find(keyid);
  if (key == root.keys.end() || !key->second.ed25519) return keyid.substr(0, 16);
  auto identity = crypto::PublicIdentity::from_ed25519(*key->second.ed25519);
  return identity ? identity->key_id() : keyid.substr(0, 16);
}

// Prints one metadata file's state; false if a fresh device would refuse it.
bool describe_signatures(const std::string& label, const SignedMetadata& file, const RootMetadata& root,
                         RoleName role) {
  const std::size_t valid = count_valid_signatures(file, root, role);
  const auto& role_keys = root.roles.at(role);
  std::printf("  %-22s %zu of %u required signature(s) from %zu %s key(s)%s\n", label.c_str(), valid,
              role_keys.threshold, role_keys.keyids.size(), std::string(role_name(role)).c_str(),
              valid >= role_keys.threshold ? "" : "  <- not enough");
  return valid >= role_keys.threshold;
}

int inspect(const fs::path& repo_dir) {
  auto repository = ReleaseRepository::open(repo_dir);
  if (!repository) return fail(repository.error());
  const RootMetadata& root = repository->staged_root();
  std::printf("release repository %s\n", repo_dir.c_str());
  std::printf("root version %llu, expires %s%s\n", static_cast<unsigned long long>(root.version),
              format_utc(root.expires).c_str(), root.expires <= now_utc() ? " (EXPIRED)" : "");
  for (RoleName role : kAllRoles) {
    const auto& role_keys = root.roles.at(role);
    std::printf("  %-9s threshold %u of", std::string(role_name(role)).c_str(), role_keys.threshold);
    for (const auto& id : role_keys.keyids) std::printf(" %s", shown_id(root, id).c_str());
    std::printf("\n");
  }
  auto read = [&](const fs::path& path) -> std::optional<SignedMetadata> {
    auto text = base::read_file(path, 64 << 20);
    if (!text) return std::nullopt;
    auto file = parse_metadata_file(base::text_bytes(*text), path.string());
    if (!file) return std::nullopt;
    return std::move(file).value();
  };
  std::printf("staged (published by 'publish'):\n");
  describe_signatures("root version " + std::to_string(root.version), repository->staged_root_file(), root,
                      RoleName::root);
  describe_signatures("targets version " + std::to_string(repository->staged_targets().version),
                      repository->staged_targets_file(), root, RoleName::targets);
  for (const auto& [name, file] : repository->staged_delegated_files()) {
    auto delegation = repository->delegation_of(name);
    if (!delegation) continue;
    auto delegator = delegation->first == "targets"
                         ? Result<TargetsMetadata>(repository->staged_targets())
                         : parse_targets(repository->staged_delegated_files().at(delegation->first).signed_part,
                                         delegation->first);
    if (!delegator || !delegator->delegations) continue;
    const auto& role = delegation->second;
    const std::size_t valid = count_valid_signatures(file, delegator->delegations->keys, role.keys);
    std::string scope;
    for (const auto& pattern : role.paths.empty() ? role.path_hash_prefixes : role.paths) scope += " " + pattern;
    std::printf("  %-22s %zu of %u required signature(s), delegated by %s %s%s%s%s\n",
                ("role '" + crypto::printable_text(name) + "'").c_str(), valid, role.keys.threshold,
                delegation->first.c_str(), role.paths.empty() ? "path hash prefixes" : "paths", scope.c_str(),
                role.terminating ? " (terminating)" : "", valid >= role.keys.threshold ? "" : "  <- not enough");
    const nlohmann::json role_targets = file.signed_part.value("targets", nlohmann::json::object());
    for (const auto& [path, target] : role_targets.items()) std::printf("    %s\n", path.c_str());
  }
  std::printf("published:\n");
  for (RoleName role : {RoleName::targets, RoleName::snapshot, RoleName::timestamp}) {
    const fs::path path = repo_dir / "metadata" / metadata_file_name(role);
    auto file = read(path);
    if (!file) {
      std::printf("  %-22s not published\n", metadata_file_name(role).c_str());
      continue;
    }
    const auto version = file->signed_part.value("version", std::uint64_t{0});
    const auto expires = parse_utc(file->signed_part.value("expires", std::string()), "expires");
    std::printf("  %-22s version %llu, expires %s%s\n", metadata_file_name(role).c_str(),
                static_cast<unsigned long long>(version),
                expires ? format_utc(*expires).c_str() : "(unreadable)",
                expires && *expires <= now_utc() ? " (EXPIRED: run publish)" : "");
  }
  std::printf("targets:\n");
  std::set<std::string> models;
  for (const auto& [path, target] : repository->staged_targets().targets) {
    if (target.custom.contains("model") && target.custom["model"].is_string()) models.insert(target.custom["model"]);
  }
  for (const auto& model : models) {
    auto files = release_files(repository->staged_targets(), model, "staged/targets.json");
    if (!files) return fail(files.error());
    for (const auto& file : *files) std::printf("  %-30s %s\n", file.path.c_str(), file.describe().c_str());
  }
  return 0;
}

// Checks the published repository as a device that trusts only `root_path`
// would, then every target file: hashes, and that each delta rebuilds its version.
int verify(const fs::path& repo_dir, fs::path root_path) {
  if (root_path.empty()) root_path = repo_dir / "metadata" / "1.root.json";
  auto root = base::read_file(root_path, 1 << 20);
  if (!root) return fail(root.error());
  std::string pattern = (fs::temp_directory_path() / "shoal-release-verify-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return fail(make_error(ErrorCode::io, "cannot make a temporary directory beside " + pattern));
  }
  const fs::path trust_dir = pattern;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } cleanup{trust_dir};
  if (auto status = TufClient::trust_root(trust_dir, base::text_bytes(*root), root_path.string()); !status) {
    return fail(status.error());
  }
  auto client = TufClient::open(trust_dir);
  if (!client) return fail(client.error());
  DirectoryFetcher fetcher(repo_dir);
  auto targets = client->refresh(fetcher, now_utc());
  if (!targets) return fail(targets.error());
  const auto& trusted = client->trusted();
  std::printf("metadata: root version %llu, timestamp %llu, snapshot %llu, targets %llu: signatures, versions and "
              "expiry check out\n",
              static_cast<unsigned long long>(trusted.root.version),
              static_cast<unsigned long long>(trusted.timestamp->version),
              static_cast<unsigned long long>(trusted.snapshot->version),
              static_cast<unsigned long long>(targets->version));
  int problems = 0;
  std::map<std::string, weights::Weights> full_versions;
  std::vector<std::pair<ReleaseFile, std::vector<std::uint8_t>>> deltas;  // each with its downloaded bytes
  for (const auto& [path, target] : targets->targets) {
    auto bytes = client->download_target(fetcher, path, target);
    if (!bytes) {
      std::printf("  %s: %s\n", path.c_str(), bytes.error().message.c_str());
      ++problems;
      continue;
    }
    auto file = parse_release_file(path, target, "targets.json");
    if (!file) {
      std::printf("  %s: %s\n", path.c_str(), file.error().message.c_str());
      ++problems;
      continue;
    }
    if (file->kind == ReleaseFileKind::full) {
      auto weights = weights::decode_weights(*bytes, path);
      if (!weights || values_hash(*weights) != file->values_hash) {
        std::printf("  %s: does not decode to the signed values hash\n", path.c_str());
        ++problems;
        continue;
      }
      full_versions.emplace(file->model + "/" + std::to_string(file->version), std::move(weights).value());
    } else {
      deltas.emplace_back(*file, std::move(bytes).value());
    }
  }
  // Delegated roles, each once, and the files they sign.
  std::size_t delegated_roles = 0;
  std::vector<const TargetsMetadata*> delegators{&*targets};
  std::set<std::string> visited;
  while (!delegators.empty()) {
    const TargetsMetadata* delegator = delegators.back();
    delegators.pop_back();
    if (!delegator->delegations) continue;
    for (const auto& role : delegator->delegations->roles) {
      if (!visited.insert(role.name).second) continue;
      auto loaded = client->load_delegated(fetcher, role, *delegator->delegations, now_utc());
      if (!loaded) {
        std::printf("  role '%s': %s\n", crypto::printable_text(role.name).c_str(), loaded.error().message.c_str());
        ++problems;
        continue;
      }
      ++delegated_roles;
      delegators.push_back(*loaded);
      for (const auto& [path, target] : (*loaded)->targets) {
        if (auto bytes = client->download_target(fetcher, path, target); !bytes) {
          std::printf("  %s (role '%s'): %s\n", path.c_str(), crypto::printable_text(role.name).c_str(),
                      bytes.error().message.c_str());
          ++problems;
        }
      }
    }
  }
  if (delegated_roles > 0) std::printf("delegated roles: %zu verified against their delegators\n", delegated_roles);
  for (const auto& [delta, bytes] : deltas) {
    auto base = full_versions.find(delta.model + "/" + std::to_string(delta.base_version));
    if (base == full_versions.end()) continue;  // its base is no longer listed; devices that hold it can still use it
    auto rebuilt = apply_delta(base->second, bytes, delta.path);
    if (!rebuilt || values_hash(*rebuilt) != delta.values_hash) {
      std::printf("  %s: does not rebuild version %llu from version %llu\n", delta.path.c_str(),
                  static_cast<unsigned long long>(delta.version), static_cast<unsigned long long>(delta.base_version));
      ++problems;
    }
  }
  std::printf("targets: %zu file(s), %zu full, %zu delta(s); %d problem(s)\n", targets->targets.size(),
              full_versions.size(), deltas.size(), problems);
  if (problems == 0) return 0;
  return fail(make_error(ErrorCode::verification,
                         std::to_string(problems) + " problem(s) in " + repo_dir.string() + ", listed above"));
}

// "1h", "30m", "90s", "2d" or plain seconds.
Result<std::int64_t> parse_duration(const std::string& text) {
  std::int64_t value = 0;
  std::size_t used = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = used == 0 ? "" : text.substr(used);
  const std::map<std::string, std::int64_t> scale{{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
  auto found = scale.find(unit);
  if (used == 0 || value < 0 || found == scale.end()) {
    return make_error(ErrorCode::invalid_argument, "duration '" + text + "' is not like 90s, 30m, 1h or 2d");
  }
  return value * found->second;
}

struct RolloutOptions {
  std::string model;
  std::uint64_t version = 0;
  std::string stages;
  std::string soak = "1h";
  fs::path enrolment;
  fs::path rollout_key, snapshot_key, timestamp_key;
  std::string reason;
  bool force = false;
};

int run_rollout(CLI::App& command, const fs::path& repo_dir, const RolloutOptions& options) {
  auto repository = ReleaseRepository::open(repo_dir);
  if (!repository) return fail(repository.error());
  const UnixTime now = now_utc();
  if (command.got_subcommand("status")) {
    auto rollout = current_rollout(*repository, options.model);
    if (!rollout) return fail(rollout.error());
    if (!*rollout) return fail(make_error(ErrorCode::not_found, "model '" + options.model + "' has no rollout"));
    std::printf("%s", describe_rollout(**rollout, now).c_str());
    return 0;
  }
  std::vector<Result<crypto::IdentityKeyPair>> loaded;
  for (const auto& path : {options.rollout_key, options.snapshot_key, options.timestamp_key}) {
    loaded.push_back(load_signing_key(path));
    if (!loaded.back()) return fail(loaded.back().error());
  }
  const OnlineKeys keys{&*loaded[0], &*loaded[1], &*loaded[2]};
  Result<Rollout> rollout = make_error(ErrorCode::invalid_argument, "no rollout command");
  if (command.got_subcommand("start")) {
    auto stages = parse_rollout_stages(options.stages);
    if (!stages) return fail(stages.error());
    for (auto& stage : *stages) {
      if (stage.group.empty()) continue;
      if (options.enrolment.empty()) {
        return fail(make_error(ErrorCode::invalid_argument, "stage '" + stage.group +
                                                                "' is a group: give the enrolment list (--enrolment)"));
      }
      auto list = protocol::EnrolmentList::load(options.enrolment);
      if (!list) return fail(list.error());
      for (const auto& device : list->members(stage.group)) stage.devices.push_back(crypto::to_hex(device.ed25519()));
      if (stage.devices.empty()) {
        return fail(make_error(ErrorCode::invalid_argument, "no device in " + options.enrolment.string() +
                                                                " is in group '" + stage.group + "'"));
      }
    }
    auto soak = parse_duration(options.soak);
    if (!soak) return fail(soak.error());
    rollout = start_rollout(*repository, options.model, options.version, std::move(stages).value(), *soak, keys, now);
  } else if (command.got_subcommand("advance")) {
    rollout = advance_rollout(*repository, options.model, options.force, keys, now);
  } else {
    rollout = halt_rollout(*repository, options.model, options.reason, keys, now);
  }
  if (!rollout) return fail(rollout.error());
  std::printf("published the rollout of %s\n%s", options.model.c_str(), describe_rollout(*rollout, now).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoal-release: signed, delta-compressed model releases (a TUF repository)"};
  app.require_subcommand(1);
  fs::path repo_dir;
  auto add_repo = [&](CLI::App* command) {
    command->add_option("--repo", repo_dir, "the release repository directory")->required();
  };

  std::map<RoleName, RoleOptions> init_roles;
  ExpiryDays expiry;
  auto* init = app.add_subcommand("init", "create a repository with root version 1 (then sign it with the root keys)");
  add_repo(init);
  add_role_options(init, init_roles, /*required=*/true);
  init->add_option("--root-expires-days", expiry.root, "days root metadata stays valid")->capture_default_str();
  bool no_consistent_snapshot = false;
  init->add_flag("--no-consistent-snapshot", no_consistent_snapshot,
                 "publish one file per role, not one per version (devices then see a mirror mid-copy as a mix)");

  std::string model;
  fs::path weights_path;
  std::size_t delta_count = 3;
  int targets_days = 90;
  float lossy_bound = 0;
  auto* add = app.add_subcommand("add", "stage a new model version with deltas from earlier ones");
  add_repo(add);
  add->add_option("--model", model, "model name, e.g. cnn")->required();
  add->add_option("--weights", weights_path, "the new version's weights file")->required()->check(CLI::ExistingFile);
  add->add_option("--deltas", delta_count, "deltas from the last K versions")->capture_default_str();
  add->add_option("--expires-days", targets_days, "days the targets metadata stays valid")->capture_default_str();
  add->add_option("--lossy-bound", lossy_bound,
                  "release a quantised version, each weight within this of the given one (0: exact)")
      ->check(CLI::NonNegativeNumber);

  std::string role_text;
  fs::path key_path;
  auto* sign = app.add_subcommand("sign", "add one signature to the staged root, targets or a delegated role");
  add_repo(sign);
  sign->add_option("--role", role_text, "root, targets or a delegated role's name")->required();
  sign->add_option("--key", key_path, "secret key file (role release)")->required();

  DelegationChoice delegation;
  std::vector<fs::path> delegated_keys;
  std::string delegator = "targets";
  auto* delegate = app.add_subcommand("delegate", "stage a delegation of some target paths to another role");
  add_repo(delegate);
  delegate->add_option("--role", delegation.name, "the delegated role's name")->required();
  delegate->add_option("--key", delegated_keys, "public key file of the role's keys (repeat for several)")->required();
  delegate->add_option("--threshold", delegation.threshold, "signatures needed from them")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  auto* paths = delegate->add_option("--paths", delegation.paths,
                                     "target path patterns it may sign ('*' and '?' within one segment)");
  auto* prefixes = delegate->add_option("--path-hash-prefixes", delegation.path_hash_prefixes,
                                        "hex prefixes of the SHA-256 of the target paths it may sign");
  paths->excludes(prefixes);
  delegate->add_flag("--terminating", delegation.terminating,
                     "paths it matches are never looked for in roles searched after it");
  delegate->add_option("--from", delegator, "the delegating role")->capture_default_str();

  std::string target_role = "targets", target_path;
  fs::path target_file;
  auto* add_target = app.add_subcommand("add-target", "stage any file as a target of a role");
  add_repo(add_target);
  add_target->add_option("--role", target_role, "targets or a delegated role")->capture_default_str();
  add_target->add_option("--path", target_path, "its target path, e.g. docs/notes.txt")->required();
  add_target->add_option("--file", target_file, "the file")->required()->check(CLI::ExistingFile);

  fs::path snapshot_key_path, timestamp_key_path;
  int snapshot_days = 7, timestamp_days = 1;
  auto* publish = app.add_subcommand("publish", "publish what is staged with a new snapshot and timestamp");
  add_repo(publish);
  publish->add_option("--snapshot-key", snapshot_key_path, "the online snapshot key")->required();
  publish->add_option("--timestamp-key", timestamp_key_path, "the online timestamp key")->required();
  publish->add_option("--snapshot-expires-days", snapshot_days)->capture_default_str();
  publish->add_option("--timestamp-expires-days", timestamp_days)->capture_default_str();

  std::map<RoleName, RoleOptions> rotate_roles;
  auto* rotate = app.add_subcommand("rotate", "stage the next root version with new keys for the roles given");
  add_repo(rotate);
  add_role_options(rotate, rotate_roles, /*required=*/false);
  rotate->add_option("--root-expires-days", expiry.root, "days root metadata stays valid")->capture_default_str();

  RolloutOptions rollout_options;
  auto* rollout = app.add_subcommand("rollout", "stage a release across the fleet: start, advance, halt, status");
  rollout->require_subcommand(1);
  auto* rollout_start = rollout->add_subcommand("start", "start a rollout of a released version at its first stage");
  auto* rollout_advance = rollout->add_subcommand("advance", "move to the next stage once this one has soaked");
  auto* rollout_halt = rollout->add_subcommand("halt", "stop: no device installs the version, and those on it roll back");
  auto* rollout_status = rollout->add_subcommand("status", "show the rollout's stages and state");
  for (auto* command : {rollout_start, rollout_advance, rollout_halt, rollout_status}) {
    command->add_option("MODEL", rollout_options.model, "the model")->required();
    add_repo(command);
  }
  rollout_start->add_option("VERSION", rollout_options.version, "the released version")->required();
  rollout_start->add_option("--stages", rollout_options.stages,
                            "stages: percentages of the fleet and group names, e.g. canary,1,10,50,100")
      ->required();
  rollout_start->add_option("--soak", rollout_options.soak, "how long each stage runs before it may advance")
      ->capture_default_str();
  rollout_start->add_option("--enrolment", rollout_options.enrolment,
                            "the enrolment list whose group=NAME entries name the group stages' devices");
  rollout_advance->add_flag("--force", rollout_options.force, "advance before the stage has soaked");
  rollout_halt->add_option("--reason", rollout_options.reason, "why, for rollout status and the devices' logs");
  for (auto* command : {rollout_start, rollout_advance, rollout_halt}) {
    command->add_option("--rollout-key", rollout_options.rollout_key, "the online key of the rollout role")->required();
    command->add_option("--snapshot-key", rollout_options.snapshot_key, "the online snapshot key")->required();
    command->add_option("--timestamp-key", rollout_options.timestamp_key, "the online timestamp key")->required();
  }

  fs::path trusted_root;
  auto* verify_command = app.add_subcommand("verify", "check the published repository as a fresh device would");
  add_repo(verify_command);
  verify_command->add_option("--root", trusted_root, "the root a device trusts (default metadata/1.root.json)");

  auto* inspect_command = app.add_subcommand("inspect", "explain the repository: roles, signatures, targets");
  add_repo(inspect_command);

  CLI11_PARSE(app, argc, argv);
  const UnixTime now = now_utc();

  if (*init) {
    auto keys = load_role_keys(init_roles);
    if (!keys) return fail(keys.error());
    auto repository = ReleaseRepository::init(repo_dir, *keys, now, expiry, !no_consistent_snapshot);
    if (!repository) return fail(repository.error());
    std::printf("created %s: root version 1 staged; sign it with %u root key(s), then add and publish\n",
                repo_dir.c_str(), repository->staged_root().roles.at(RoleName::root).threshold);
    return 0;
  }
  if (*verify_command) return verify(repo_dir, trusted_root);
  if (*rollout) return run_rollout(*rollout, repo_dir, rollout_options);
  if (*inspect_command) return inspect(repo_dir);

  auto repository = ReleaseRepository::open(repo_dir);
  if (!repository) return fail(repository.error());
  if (*add) {
    auto weights = weights::read_weights_file(weights_path);
    if (!weights) return fail(weights.error());
    repository->expiry().targets = targets_days;
    auto added = repository->add(*weights, model, delta_count, now,
                                 lossy_bound > 0 ? std::optional<float>(lossy_bound) : std::nullopt);
    if (!added) return fail(added.error());
    std::printf("staged %s as %s\n", added->full.describe().c_str(), added->full.path.c_str());
    if (added->lossy_max_error) {
      std::printf("  lossy: each weight within %g of %s (largest change %g)\n", lossy_bound, weights_path.c_str(),
                  *added->lossy_max_error);
    }
    for (const auto& delta : added->deltas) {
      std::printf("  delta %s: %.1f%% of the full file\n", delta.path.c_str(), 100.0 * delta.length / added->full.length);
    }
    for (const auto& skipped : added->skipped) std::printf("  %s\n", skipped.c_str());
    std::printf("targets version %llu staged; sign it with the targets key(s), then publish\n",
                static_cast<unsigned long long>(repository->staged_targets().version));
    return 0;
  }
  if (*delegate) {
    if (delegation.paths.empty() && delegation.path_hash_prefixes.empty()) {
      return fail(make_error(ErrorCode::invalid_argument, "delegate: give --paths or --path-hash-prefixes"));
    }
    for (const auto& path : delegated_keys) {
      auto key = crypto::load_public_key(path, crypto::KeyRole::release);
      if (!key) return fail(key.error());
      delegation.keys.push_back(key->identity);
    }
    if (auto status = repository->delegate(delegation, delegator, now); !status) return fail(status.error());
    std::printf("staged delegation of %s to role '%s'; sign %s again, add targets to '%s' and sign it, then publish\n",
                delegation.paths.empty() ? "path hash prefixes" : "paths", delegation.name.c_str(), delegator.c_str(),
                delegation.name.c_str());
    return 0;
  }
  if (*add_target) {
    auto bytes = base::read_file(target_file, std::size_t{8} << 30);
    if (!bytes) return fail(bytes.error());
    if (auto status = repository->add_target(target_role, target_path, base::text_bytes(*bytes),
                                             nlohmann::json::object(), now);
        !status) {
      return fail(status.error());
    }
    std::printf("staged target %s (%zu bytes) in role '%s'; sign it, then publish\n", target_path.c_str(),
                bytes->size(), target_role.c_str());
    return 0;
  }
  if (*sign && role_text != "root" && role_text != "targets") {
    auto key = load_signing_key(key_path);
    if (!key) return fail(key.error());
    if (auto status = repository->sign_delegated(role_text, *key); !status) return fail(status.error());
    const auto delegation_of = repository->delegation_of(role_text);
    std::printf("signed staged role '%s' with key %s (delegated by %s, threshold %u)\n", role_text.c_str(),
                key->public_identity().key_id().c_str(), delegation_of->first.c_str(),
                delegation_of->second.keys.threshold);
    return 0;
  }
  if (*sign) {
    auto key = load_signing_key(key_path);
    if (!key) return fail(key.error());
    const RoleName role = *parse_role_name(role_text);
    if (auto status = repository->sign(role, *key); !status) return fail(status.error());
    const auto& file = role == RoleName::root ? repository->staged_root_file() : repository->staged_targets_file();
    std::printf("signed staged %s with key %s: %zu of %u signature(s)\n", role_text.c_str(),
                key->public_identity().key_id().c_str(),
                count_valid_signatures(file, repository->staged_root(), role),
                repository->staged_root().roles.at(role).threshold);
    return 0;
  }
  if (*publish) {
    auto snapshot_key = load_signing_key(snapshot_key_path);
    if (!snapshot_key) return fail(snapshot_key.error());
    auto timestamp_key = load_signing_key(timestamp_key_path);
    if (!timestamp_key) return fail(timestamp_key.error());
    repository->expiry().snapshot = snapshot_days;
    repository->expiry().timestamp = timestamp_days;
    if (auto status = repository->publish(*snapshot_key, *timestamp_key, now); !status) return fail(status.error());
    std::printf("published root version %llu and targets version %llu; the timestamp expires in %d day(s)\n",
                static_cast<unsigned long long>(repository->staged_root().version),
                static_cast<unsigned long long>(repository->staged_targets().version), timestamp_days);
    return 0;
  }
  // rotate
  auto keys = load_role_keys(rotate_roles);
  if (!keys) return fail(keys.error());
  if (keys->empty()) return fail(make_error(ErrorCode::invalid_argument, "rotate: give new keys for at least one role"));
  repository->expiry().root = expiry.root;
  if (auto status = repository->rotate(*keys, now); !status) return fail(status.error());
  std::printf("staged root version %llu; sign it with the old root key(s) and the new ones, then publish\n",
              static_cast<unsigned long long>(repository->staged_root().version));
  return 0;
}
