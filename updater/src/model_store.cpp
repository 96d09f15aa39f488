#include "shoal/updater/model_store.h"

#include <sstream>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/weights/weights_file.h"

namespace fs = std::filesystem;

namespace shoal::updater {
namespace {

// "v<digits>-<16 hex>.weights": names the store writes, so CURRENT can name nothing else.
bool is_model_file_name(const std::string& name) {
  const std::string suffix = ".weights";
  if (name.size() < 2 + 1 + 16 + suffix.size() || name[0] != 'v') return false;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  const std::size_t dash = name.find('-');
  if (dash == std::string::npos || dash == 1 || name.size() - suffix.size() - dash - 1 != 16) return false;
  for (std::size_t i = 1; i < dash; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  for (std::size_t i = dash + 1; i < name.size() - suffix.size(); ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
  }
  return true;
}

}  // namespace

Result<ModelStore> ModelStore::open(const fs::path& dir, base::Env& env) {
  if (auto status = env.create_directories(dir); !status) return status.error();
  ModelStore store(dir, env);
  const fs::path current = dir / "CURRENT";
  if (!fs::exists(current)) return store;
  auto text = base::read_file(current, 4096, env);
  if (!text) return text.error();
  std::istringstream lines(*text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    const std::size_t space = line.find(' ');
    const std::string key = line.substr(0, space);
    const std::string value = space == std::string::npos ? "" : line.substr(space + 1);
    if (key == "rolled_back" && !value.empty() && value.size() < 20 &&
        value.find_first_not_of("0123456789") == std::string::npos) {
      store.rolled_back_ = std::stoull(value);
    } else if ((key == "active" || key == "previous") && is_model_file_name(value)) {
      (key == "active" ? store.active_ : store.previous_) = value;
    } else {
      return make_error(ErrorCode::corrupt, current.string() + " line " + std::to_string(number) +
                                                ": expected 'active <file>', 'previous <file>' or 'rolled_back <version>'");
    }
  }
  if (!store.active_) return make_error(ErrorCode::corrupt, current.string() + " names no active model");
  return store;
}

Result<std::optional<weights::Weights>> ModelStore::load_active() const {
  if (!active_) return std::optional<weights::Weights>();
  auto weights = weights::read_weights_file(path_of(*active_));
  if (!weights) return weights.error();
  return std::optional<weights::Weights>(std::move(weights).value());
}

Result<std::string> ModelStore::stage(const weights::Weights& weights) {
  const auto hash = values_hash(weights);
  const std::string file = "v" + std::to_string(weights.version()) + "-" +
                           crypto::to_hex(std::span(hash).first(8)) + ".weights";
  if (auto status = weights::write_weights_file(path_of(file), weights, *env_); !status) return status.error();
  return file;
}

Status ModelStore::write_current(std::optional<std::string> active, std::optional<std::string> previous,
                                 std::optional<std::uint64_t> rolled_back) {
  std::string text;
  if (active) text += "active " + *active + "\n";
  if (previous) text += "previous " + *previous + "\n";
  if (rolled_back) text += "rolled_back " + std::to_string(*rolled_back) + "\n";
  if (auto status = base::write_file_durably(dir_ / "CURRENT", text, 0644, *env_); !status) return status;
  active_ = std::move(active);
  previous_ = std::move(previous);
  rolled_back_ = rolled_back;
  return ok_status();
}

Status ModelStore::activate(const std::string& file) {
  if (!is_model_file_name(file) || !fs::exists(path_of(file))) {
    return make_error(ErrorCode::invalid_argument, "'" + file + "' is not a staged model in " + dir_.string());
  }
  const std::optional<std::string> previous = active_ == file ? previous_ : active_;
  if (auto status = write_current(file, previous, std::nullopt); !status) return status;
  remove_unnamed_files();
  return ok_status();
}

Status ModelStore::rollback() {
  if (!previous_) {
    return make_error(ErrorCode::not_found, dir_.string() + " holds no previous model to roll back to");
  }
  auto leaving = weights::read_weights_file(path_of(*active_));
  if (!leaving) return leaving.error();
  return write_current(previous_, active_, leaving->version());
}

// Best effort, and also of temporary files a crash left: what stays is removed at the next install.
void ModelStore::remove_unnamed_files() const {
  auto names = env_->list_directory(dir_);
  if (!names) return;
  for (const auto& name : *names) {
    const bool unnamed = is_model_file_name(name) && name != active_ && name != previous_;
    if (unnamed || base::is_temporary_file_name(name)) (void)env_->remove_file(dir_ / name);
  }
}

}  // namespace shoal::updater
