// FaultInjectingEnv: an Env for tests that passes operations to another Env
// and breaks chosen ones.
//
// Operations that change the disk (create, append, sync, close, rename,
// remove, directory sync and creation) are numbered from 0 in the order they
// are asked for. Test code can
//   - fail one of them with an errno (ENOSPC, EIO), as a full or failing disk
//     does: the operation does nothing and reports the error;
//   - crash after N of them: from then on nothing reaches the disk and every
//     operation fails, as if the process had died there. The test then loads
//     the state through Env::standard(), as a restarted process would.
// Reads are passed through, but fail once crashed.
// Not thread-safe: one test thread drives it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "shoal/base/env.h"

namespace shoal::base {

enum class FileOperation { create, append, sync, close, rename, remove, sync_directory, create_directories };

const char* to_string(FileOperation operation);

class FaultInjectingEnv final : public Env {
 public:
  explicit FaultInjectingEnv(Env& target = Env::standard()) : target_(target) {}

  // The operation numbered `index` fails with `error_number`.
  void fail_operation(std::size_t index, int error_number);
  // Every later operation of `kind` fails with `error_number`.
  void fail_every(FileOperation kind, int error_number);
  // Operations numbered `count` and later never happen: the process "died"
  // after `count` operations.
  void crash_after(std::size_t count);

  // How many disk-changing operations were asked for so far.
  std::size_t operations() const { return operations_; }
  bool crashed() const { return crashed_; }
  // "rename .checkpoint.json.tmp.1.0 -> checkpoint.json", one per operation, for failure messages.
  const std::vector<std::string>& log() const { return log_; }

  Result<std::unique_ptr<WritableFile>> create_new_file(const std::filesystem::path& path, mode_t mode) override;
  Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes) override;
  Status rename_file(const std::filesystem::path& from, const std::filesystem::path& to) override;
  Status remove_file(const std::filesystem::path& path) override;
  Status sync_directory(const std::filesystem::path& directory) override;
  Status create_directories(const std::filesystem::path& directory) override;
  Result<std::vector<std::string>> list_directory(const std::filesystem::path& directory) override;
  std::chrono::system_clock::time_point wall_clock() override { return target_.wall_clock(); }
  std::chrono::steady_clock::time_point monotonic_clock() override { return target_.monotonic_clock(); }

  // For the files it creates: decides whether their next operation happens.
  Status admit(FileOperation kind, const std::filesystem::path& path);

 private:
  Env& target_;
  std::size_t operations_ = 0;
  std::optional<std::size_t> crash_at_;
  bool crashed_ = false;
  std::vector<std::pair<std::size_t, int>> failures_;
  std::vector<std::pair<FileOperation, int>> kind_failures_;
  std::vector<std::string> log_;
};

}  // namespace shoal::base
