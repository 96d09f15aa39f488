// The models a device has installed from releases: the active one, which it
// serves, and the previous one, which `rollback` returns to.
//
//   <dir>/v12-0123456789abcdef.weights   one weights file per installed version
//   <dir>/CURRENT                         "active v12-....weights\nprevious v11-....weights\n"
//
// After a rollback CURRENT also says "rolled_back 12": the version the
// device turned away from, which updates then skip until a newer one is
// released.
//
// Installing writes the new version's file first (stage), then replaces
// CURRENT atomically (activate), then removes files CURRENT no longer
// names. A crash at any point leaves CURRENT naming complete files: the
// old pair or the new one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "shoal/base/env.h"
#include "shoal/base/result.h"
#include "shoal/weights/weights.h"

namespace shoal::updater {

class ModelStore {
 public:
  // Opens (creating if needed) the store in `dir`. A damaged CURRENT is an error naming it.
  // Every change to the disk goes through `env`, which must outlive the store.
  static Result<ModelStore> open(const std::filesystem::path& dir, base::Env& env = base::Env::standard());

  const std::optional<std::string>& active() const { return active_; }
  const std::optional<std::string>& previous() const { return previous_; }
  const std::optional<std::uint64_t>& rolled_back() const { return rolled_back_; }
  std::filesystem::path path_of(const std::string& file) const { return dir_ / file; }

  // The active model's weights, or nullopt when nothing is installed.
  Result<std::optional<weights::Weights>> load_active() const;

  // Writes `weights` into the store without making it active; returns its file name.
  Result<std::string> stage(const weights::Weights& weights);
  // Makes `file` (from stage) active and the active one the previous, then
  // removes the files neither names.
  Status activate(const std::string& file);
  // Swaps active and previous and records the version left. An error when there is no previous.
  Status rollback();

 private:
  ModelStore(std::filesystem::path dir, base::Env& env) : dir_(std::move(dir)), env_(&env) {}
  Status write_current(std::optional<std::string> active, std::optional<std::string> previous,
                       std::optional<std::uint64_t> rolled_back);
  void remove_unnamed_files() const;

  std::filesystem::path dir_;
  base::Env* env_;
  std::optional<std::string> active_, previous_;
  std::optional<std::uint64_t> rolled_back_;
};

}  // namespace shoal::updater
