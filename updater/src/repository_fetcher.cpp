#include "shoal/updater/repository_fetcher.h"

#include <fcntl.h>
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
