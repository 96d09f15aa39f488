// How a device reads a release repository. The TUF client asks for files by
// their path in the repository ("metadata/timestamp.json",
// "targets/cnn/v12.weights") with a cap on their length; a fetcher for a
// directory, for the aggregator's ZeroMQ socket or for an HTTP mirror
// implements this one call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::updater {

class RepositoryFetcher {
 public:
  virtual ~RepositoryFetcher() = default;
  // The file at `path`. A file longer than `max_bytes` is an error without
  // reading past the cap (an endless-data attack); a missing file is
  // ErrorCode::not_found.
  virtual Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) = 0;
  // Where files come from, for messages ("/srv/releases", "tcp://host:7400").
  virtual std::string describe() const = 0;
};

// A repository on a local or mounted file system.
class DirectoryFetcher : public RepositoryFetcher {
 public:
  explicit DirectoryFetcher(std::filesystem::path root) : root_(std::move(root)) {}
  Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) override;
  std::string describe() const override { return root_.string(); }

 private:
  std::filesystem::path root_;
};

// Metadata from one fetcher, target files from another: for a repository
// whose targets/ is served from elsewhere (a CDN, say). "targets/P" is
// fetched as "P" from the targets fetcher; every other path from metadata's.
class SplitFetcher : public RepositoryFetcher {
 public:
  SplitFetcher(std::unique_ptr<RepositoryFetcher> metadata, std::unique_ptr<RepositoryFetcher> targets)
      : metadata_(std::move(metadata)), targets_(std::move(targets)) {}
  Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) override;
  std::string describe() const override {
    return metadata_->describe() + " (targets from " + targets_->describe() + ")";
  }

 private:
  std::unique_ptr<RepositoryFetcher> metadata_;
  std::unique_ptr<RepositoryFetcher> targets_;
};

// A byte range of a repository file, as a server hands it out.
struct FileRange {
  std::vector<std::uint8_t> bytes;
  std::uint64_t total_size = 0;  // the whole file's size
};

// Bytes [offset, offset + max_bytes) of `path` under `root` (fewer at the
// end of the file), as a server hands them to devices. Only regular files
// under metadata/ and targets/ are served: a path that leaves the repository,
// goes through a symbolic link, names staged/ or anything unpublished, or
// ends at a FIFO, device or directory is refused, without blocking.
Result<FileRange> read_repository_range(const std::filesystem::path& root, const std::string& path,
                                        std::uint64_t offset, std::uint64_t max_bytes);

// True for a repository path that stays inside the repository: relative,
// no "..", no empty or "." segments.
bool is_safe_repository_path(const std::string& path);

}  // namespace shoal::updater
