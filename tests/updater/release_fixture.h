// A release repository and a device, in a temporary directory, for the
// updater tests: one key per role (or more, where a test asks), model
// versions that move a little each step, and helpers that play the operator
// and the attacker by rewriting metadata files.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "shoal/base/durable_file.h"
#include "shoal/updater/release_installer.h"
#include "shoal/updater/release_repository.h"
#include "temp_dir.h"

namespace shoal::testing {

namespace fs = std::filesystem;
using updater::RoleName;

inline std::span<const std::uint8_t> bytes_of(const std::string& text) {
  return std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

// A directory repository that records what is fetched from it.
class CountingFetcher : public updater::RepositoryFetcher {
 public:
  explicit CountingFetcher(const fs::path& root) : inner_(root) {}
  Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) override {
    fetched.push_back(path);
    return inner_.fetch(path, max_bytes);
  }
  std::string describe() const override { return inner_.describe(); }
  std::size_t count(const std::string& path) const { return std::count(fetched.begin(), fetched.end(), path); }
  std::vector<std::string> fetched;

 private:
  updater::DirectoryFetcher inner_;
};

class ReleaseFixture {
 public:
  TempDir temp;
  fs::path repo_dir = temp / "repo";
  fs::path trust_dir = temp / "device" / "trust";
  fs::path models_dir = temp / "device" / "models";
  crypto::IdentityKeyPair root_key = crypto::IdentityKeyPair::generate();
  crypto::IdentityKeyPair targets_key = crypto::IdentityKeyPair::generate();
  crypto::IdentityKeyPair snapshot_key = crypto::IdentityKeyPair::generate();
  crypto::IdentityKeyPair timestamp_key = crypto::IdentityKeyPair::generate();
  updater::UnixTime now = 1'800'000'000;  // 2027-01-15
  // The attack tests edit metadata/<role>.json, the files of a repository
  // without consistent snapshots; tests of the consistent layout set this.
  bool consistent_snapshot = false;

  // One key per role; with `second_targets_key`, targets needs it and targets_key both.
  std::map<RoleName, updater::RoleKeyChoice> role_keys(const crypto::IdentityKeyPair* second_targets_key = nullptr) {
    std::map<RoleName, updater::RoleKeyChoice> keys;
    keys[RoleName::root].keys = {root_key.public_identity()};
    keys[RoleName::targets].keys = {targets_key.public_identity()};
    if (second_targets_key) keys[RoleName::targets] = {{targets_key.public_identity(), second_targets_key->public_identity()}, 2};
    keys[RoleName::snapshot].keys = {snapshot_key.public_identity()};
    keys[RoleName::timestamp].keys = {timestamp_key.public_identity()};
    return keys;
  }

  // A repository with one key per role, root signed, nothing published.
  updater::ReleaseRepository make_repository() { return make_repository(role_keys(), {&root_key}); }

  updater::ReleaseRepository make_repository(const std::map<RoleName, updater::RoleKeyChoice>& keys,
                                             const std::vector<const crypto::IdentityKeyPair*>& root_signers) {
    auto repository = updater::ReleaseRepository::init(repo_dir, keys, now, {}, consistent_snapshot);
    REQUIRE(repository.ok());
    for (const auto* key : root_signers) REQUIRE(repository->sign(RoleName::root, *key).ok());
    return std::move(repository).value();
  }
  // Version `version` of a small model with BatchNorm-like buffers: every
  // version moves each weight and running variance a little, and counts
  // 100 more batches.
  static weights::Weights model_version(std::uint64_t version) {
    using weights::DType, weights::TensorKind;
    auto layout = *weights::Layout::create({{"conv", {4000}},
                                            {"fc", {1000}},
                                            {"bias", {10}},
                                            {"bn.running_var", {10}, DType::float32, TensorKind::buffer},
                                            {"bn.num_batches_tracked", {}, DType::int64, TensorKind::buffer}});
    std::mt19937 rng(11);
    std::normal_distribution<float> init(0.0f, 0.1f), step(0.0f, 1e-4f);
    std::vector<float> values(layout.value_count());
    for (auto& v : values) v = init(rng);
    for (std::uint64_t v = 1; v < version; ++v) {
      for (auto& value : values) value += step(rng);
    }
    const auto variance = *layout.find("bn.running_var");
    for (std::size_t i = 0; i < 10; ++i) values[layout.offset(variance) + i] = 1.0f + std::abs(values[i]);
    values.back() = static_cast<float>(100 * version);
    return *weights::Weights::from_values(layout, version, std::move(values));
  }

  // Adds, signs and publishes `version` of model "cnn".
  void release(updater::ReleaseRepository& repository, std::uint64_t version, std::size_t deltas = 2) {
    REQUIRE(repository.add(model_version(version), "cnn", deltas, now).ok());
    REQUIRE(repository.sign(RoleName::targets, targets_key).ok());
    REQUIRE(repository.publish(snapshot_key, timestamp_key, now).ok());
  }

  // The device trusts root version 1 of the repository.
  void trust_first_root() {
    auto root = base::read_file(repo_dir / "metadata" / "1.root.json", 1 << 20);
    REQUIRE(root.ok());
    REQUIRE(updater::TufClient::trust_root(trust_dir, bytes_of(*root), "1.root.json").ok());
  }

  // Trust directory and model store are written through `env`.
  Result<updater::InstallOutcome> install(std::function<void(updater::InstallStep)> after_step = {},
                                          base::Env& env = base::Env::standard()) {
    updater::DirectoryFetcher fetcher(repo_dir);
    auto client = updater::TufClient::open(trust_dir, {}, env);
    if (!client) return client.error();
    auto store = updater::ModelStore::open(models_dir, env);
    if (!store) return store.error();
    updater::InstallOptions options;
    options.model = "cnn";
    options.start_time = now;
    options.after_step = std::move(after_step);
    return updater::install_latest_release(fetcher, *client, *store, options);
  }

  std::uint64_t active_version() {
    auto store = updater::ModelStore::open(models_dir);
    REQUIRE(store.ok());
    auto active = store->load_active();
    REQUIRE(active.ok());
    return *active ? (*active)->version() : 0;
  }

  fs::path metadata_path(RoleName role) { return repo_dir / "metadata" / updater::metadata_file_name(role); }

  updater::SignedMetadata read_metadata(const fs::path& path) {
    auto text = base::read_file(path, 64 << 20);
    REQUIRE(text.ok());
    auto metadata = updater::parse_metadata_file(bytes_of(*text), path.string());
    REQUIRE(metadata.ok());
    return std::move(metadata).value();
  }

  void write_metadata(const fs::path& path, const updater::SignedMetadata& metadata) {
    REQUIRE(base::write_file_durably(path, updater::format_metadata_file(metadata)).ok());
  }

  // The attacker (or a careless operator) edits a published file's signed
  // part and signs it with `signers` (none: the old signatures stay).
  void rewrite(const fs::path& path, const std::function<void(nlohmann::json&)>& edit,
               const std::vector<const crypto::IdentityKeyPair*>& signers = {}) {
    auto metadata = read_metadata(path);
    edit(metadata.signed_part);
    if (!signers.empty()) metadata.signatures.clear();
    for (const auto* key : signers) REQUIRE(updater::add_signature(metadata, *key).ok());
    write_metadata(path, metadata);
  }

  // After an edit of targets.json, writes a snapshot and timestamp that
  // name it, signed with the online keys: what an attacker holding the
  // online keys (but not the targets key) can serve.
  void rechain_with_online_keys() {
    const auto targets_text = base::read_file(metadata_path(RoleName::targets), 64 << 20);
    REQUIRE(targets_text.ok());
    rewrite(metadata_path(RoleName::snapshot),
            [&](nlohmann::json& snapshot) {
              snapshot["version"] = snapshot["version"].get<std::uint64_t>() + 1;
              auto& entry = snapshot["meta"]["targets.json"];
              entry["length"] = targets_text->size();
              entry["hashes"] = updater::file_hashes(bytes_of(*targets_text));
              // Read as plain JSON: the file may be one the client is to refuse.
              entry["version"] = nlohmann::json::parse(*targets_text)["signed"]["version"];
            },
            {&snapshot_key});
    const auto snapshot_text = base::read_file(metadata_path(RoleName::snapshot), 64 << 20);
    REQUIRE(snapshot_text.ok());
    rewrite(metadata_path(RoleName::timestamp),
            [&](nlohmann::json& timestamp) {
              timestamp["version"] = timestamp["version"].get<std::uint64_t>() + 1;
              auto& entry = timestamp["meta"]["snapshot.json"];
              entry["version"] = entry["version"].get<std::uint64_t>() + 1;
              entry["length"] = snapshot_text->size();
              entry["hashes"] = updater::file_hashes(bytes_of(*snapshot_text));
            },
            {&timestamp_key});
  }
};

}  // namespace shoal::testing
