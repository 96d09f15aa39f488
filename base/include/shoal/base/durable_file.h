// Crash-safe file writes and bounded file reads, through an Env.
//
// write_file_durably writes to a temporary file in the same directory,
// flushes it to disk, renames it over the target and flushes the directory:
// after a crash at any point the target holds either its old or its new
// contents, never a mix. Every library that stores state (key files,
// checkpoints, model versions, trust roots, enrolment lists) writes through it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "shoal/base/env.h"
#include "shoal/base/result.h"

namespace shoal::base {

// Writes a file in pieces and puts it in place atomically with commit().
// Until commit() succeeds the target is untouched; a writer destroyed
// without committing removes its temporary file.
class DurableFileWriter {
 public:
  // Creates the temporary file beside `path` with permission bits `mode`
  // (exactly, whatever the umask).
  static Result<DurableFileWriter> create(const std::filesystem::path& path, mode_t mode = 0644,
                                          Env& env = Env::standard());
  DurableFileWriter(DurableFileWriter&& other) noexcept;
  DurableFileWriter& operator=(DurableFileWriter&&) = delete;
  DurableFileWriter(const DurableFileWriter&) = delete;
  ~DurableFileWriter();

  Status write(std::span<const std::uint8_t> bytes);
  // Flushes, renames over the target and flushes the directory. REQUIRES: called once.
  Status commit();

 private:
  DurableFileWriter(Env& env, std::filesystem::path path, std::filesystem::path temporary,
                    std::unique_ptr<WritableFile> file)
      : env_(&env), path_(std::move(path)), temporary_(std::move(temporary)), file_(std::move(file)) {}
  void abandon();

  Env* env_;
  std::filesystem::path path_;
  std::filesystem::path temporary_;
  std::unique_ptr<WritableFile> file_;
};

// Atomically replaces `path` with `contents`; the file gets permission bits
// `mode` (not subject to the umask), so 0600 for secrets.
Status write_file_durably(const std::filesystem::path& path, std::span<const std::uint8_t> contents,
                          mode_t mode = 0644, Env& env = Env::standard());
Status write_file_durably(const std::filesystem::path& path, std::string_view contents,
                          mode_t mode = 0644, Env& env = Env::standard());

// Reads the whole of `path`; refuses files larger than `max_bytes` so a
// hostile or mistaken path cannot exhaust memory, and anything but a regular file.
Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes,
                              Env& env = Env::standard());

// Whether a directory entry's name is one of write_file_durably's temporary
// files, which a crash can leave behind; stores skip them when they list.
bool is_temporary_file_name(std::string_view name);

}  // namespace shoal::base
