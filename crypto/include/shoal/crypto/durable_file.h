// Crash-safe file writes and bounded file reads.
//
// write_file_durably writes to a temporary file in the same directory,
// flushes it to disk, renames it over the target and flushes the directory:
// after a crash at any point the target holds either its old or its new
// contents, never a mix. Every library that stores state (key files,
// checkpoints, model versions, trust roots) writes through it; it lives in
// crypto/ because key files are the first such state and crypto is linked by
// every library.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "shoal/crypto/result.h"

namespace shoal::crypto {

// Writes a file in pieces and puts it in place atomically with commit().
// Until commit() succeeds the target is untouched; a writer destroyed
// without committing removes its temporary file.
class DurableFileWriter {
 public:
  // Creates the temporary file beside `path` with permission bits `mode`
  // (exactly, whatever the umask).
  static Result<DurableFileWriter> create(const std::filesystem::path& path, mode_t mode = 0644);
  DurableFileWriter(DurableFileWriter&& other) noexcept;
  DurableFileWriter& operator=(DurableFileWriter&&) = delete;
  DurableFileWriter(const DurableFileWriter&) = delete;
  ~DurableFileWriter();

  Status write(std::span<const std::uint8_t> bytes);
  // Flushes, renames over the target and flushes the directory. REQUIRES: called once.
  Status commit();

 private:
  DurableFileWriter(std::filesystem::path path, std::filesystem::path temporary, int fd)
      : path_(std::move(path)), temporary_(std::move(temporary)), fd_(fd) {}
  void abandon();

  std::filesystem::path path_;
  std::filesystem::path temporary_;
  int fd_;
};

// Atomically replaces `path` with `contents`; the file gets permission bits
// `mode` (not subject to the umask), so 0600 for secrets.
Status write_file_durably(const std::filesystem::path& path, std::span<const std::uint8_t> contents,
                          mode_t mode = 0644);
Status write_file_durably(const std::filesystem::path& path, std::string_view contents,
                          mode_t mode = 0644);

// Reads the whole of `path`; refuses files larger than `max_bytes` so a
// hostile or mistaken path cannot exhaust memory.
Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes);

}  // namespace shoal::crypto
