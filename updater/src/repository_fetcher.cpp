#include "shoal/updater/repository_fetcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoal::updater {

bool is_safe_repository_path(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string::npos) return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    const std::string_view segment(path.data() + start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    start = end + 1;
  }
  return true;
}

Result<std::vector<std::uint8_t>> SplitFetcher::fetch(const std::string& path, std::uint64_t max_bytes) {
  constexpr std::string_view kTargets = "targets/";
  if (path.rfind(kTargets, 0) == 0) return targets_->fetch(path.substr(kTargets.size()), max_bytes);
  return metadata_->fetch(path, max_bytes);
}

Result<std::vector<std::uint8_t>> DirectoryFetcher::fetch(const std::string& path, std::uint64_t max_bytes) {
  if (!is_safe_repository_path(path)) {
    return make_error(ErrorCode::invalid_argument, "'" + path + "' is not a path inside the repository");
  }
  const std::filesystem::path full = root_ / path;
  const int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io,
                      "cannot open " + full.string() + ": " + std::strerror(errno));
  }
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int saved = errno;
      ::close(fd);
      return make_error(ErrorCode::io, "cannot read " + full.string() + ": " + std::strerror(saved));
    }
    if (got == 0) break;
    if (bytes.size() + static_cast<std::size_t>(got) > max_bytes) {
      ::close(fd);
      return make_error(ErrorCode::verification, full.string() + " is longer than the " + std::to_string(max_bytes) +
                                                     " bytes allowed for it");
    }
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  ::close(fd);
  return bytes;
}

}  // namespace shoal::updater

namespace shoal::updater {

namespace {

// Opens `path` under `root` one component at a time, each with O_NOFOLLOW, so
// that no symbolic link inside the repository can lead out of it; the last
// with O_NONBLOCK, so that a FIFO cannot block the caller. Only regular files
// of the published parts (metadata/ and targets/) are opened.
Result<int> open_published_file(const std::filesystem::path& root, const std::string& path) {
  const std::string_view top = std::string_view(path).substr(0, path.find('/'));
  if (top != "metadata" && top != "targets") {
    return make_error(ErrorCode::invalid_argument,
                      "'" + path + "' is not published: only metadata/ and targets/ are served");
  }
  int dir = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return make_error(ErrorCode::io, "cannot open the repository: " + std::string(std::strerror(errno)));
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = path.find('/', start);
    const std::string segment = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const bool last = end == std::string::npos;
    const int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (last ? O_NONBLOCK : O_DIRECTORY);
    const int next = ::openat(dir, segment.c_str(), flags);
    const int saved = errno;
    ::close(dir);
    if (next < 0) {
      if (saved == ENOENT) return make_error(ErrorCode::not_found, "cannot open " + path + ": no such file");
      if (saved == ELOOP || saved == ENOTDIR) {
        return make_error(ErrorCode::not_found, path + " is not a file of the repository (a link or not a directory)");
      }
      return make_error(ErrorCode::io, "cannot open " + path + ": " + std::strerror(saved));
    }
    if (last) return next;
    dir = next;
    start = end + 1;
  }
}

}  // namespace

Result<FileRange> read_repository_range(const std::filesystem::path& root, const std::string& path,
                                        std::uint64_t offset, std::uint64_t max_bytes) {
  if (!is_safe_repository_path(path)) {
    return make_error(ErrorCode::invalid_argument, "'" + path + "' is not a path inside the repository");
  }
  auto opened = open_published_file(root, path);
  if (!opened) return opened.error();
  const int fd = *opened;
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::not_found, path + " is not a regular file");
  }
  FileRange range;
  range.total_size = static_cast<std::uint64_t>(info.st_size);
  const std::uint64_t start = std::min(offset, range.total_size);
  range.bytes.resize(std::min(max_bytes, range.total_size - start));
  std::size_t done = 0;
  while (done < range.bytes.size()) {
    const ssize_t got = ::pread(fd, range.bytes.data() + done, range.bytes.size() - done,
                                static_cast<off_t>(start + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      ::close(fd);
      return make_error(ErrorCode::io, "cannot read " + path);
    }
    done += static_cast<std::size_t>(got);
  }
  ::close(fd);
  return range;
}

}  // namespace shoal::updater
