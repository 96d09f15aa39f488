// Env: every file-system operation and clock reading that shoal's stored
// state depends on goes through this interface, after leveldb's Env.
//
// Env::standard() is the real file system and clock. Tests substitute a
// FaultInjectingEnv (fault_injecting_env.h) that fails chosen operations
// with ENOSPC or EIO, or stops the "process" between any two operations, to
// show that a store's state survives every such fault.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::base {

// A file open for writing. Destroying it closes it without flushing.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status append(std::span<const std::uint8_t> bytes) = 0;
  // Flushes what was appended to the disk (fsync).
  virtual Status sync() = 0;
  // REQUIRES: called at most once; no append or sync after it.
  virtual Status close() = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // The real file system and clock; safe from any thread.
  static Env& standard();

  // Creates `path`, which must not exist yet, with permission bits exactly
  // `mode` whatever the umask. A symbolic link at `path` is refused.
  virtual Result<std::unique_ptr<WritableFile>> create_new_file(const std::filesystem::path& path,
                                                                mode_t mode) = 0;
  // The whole of a regular file; larger than `max_bytes` is refused.
  virtual Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes) = 0;
  // Atomically replaces `to` with `from` (rename(2)).
  virtual Status rename_file(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  // Removes a file; not_found when there is none.
  virtual Status remove_file(const std::filesystem::path& path) = 0;
  // Makes the directory's entries (renames, creations, removals) durable.
  virtual Status sync_directory(const std::filesystem::path& directory) = 0;
  virtual Status create_directories(const std::filesystem::path& directory) = 0;
  // The names of a directory's entries, sorted; not_found when it does not exist.
  virtual Result<std::vector<std::string>> list_directory(const std::filesystem::path& directory) = 0;

  // Wall-clock time, for what is stored or logged with a date.
  virtual std::chrono::system_clock::time_point wall_clock() = 0;
  // Monotonic time, for deadlines and durations.
  virtual std::chrono::steady_clock::time_point monotonic_clock() = 0;
};

// An error for a failed system call on `path`, classified by `error_number`:
// "cannot <action> '<path>': <strerror>".
Error os_error(int error_number, const std::string& action, const std::filesystem::path& path);

}  // namespace shoal::base
