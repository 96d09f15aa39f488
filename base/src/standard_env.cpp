// Env::standard(): POSIX system calls on the real file system.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "shoal/base/env.h"

namespace shoal::base {
namespace {

// Closes a descriptor on scope exit unless released.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { if (fd_ >= 0) ::close(fd_); }
  int get() const { return fd_; }
  int release() { int fd = fd_; fd_ = -1; return fd; }

 private:
  int fd_;
};

class StandardFile final : public WritableFile {
 public:
  StandardFile(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~StandardFile() override { if (fd_ >= 0) ::close(fd_); }

  Status append(std::span<const std::uint8_t> bytes) override {
    std::size_t written = 0;
    while (written < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + written, bytes.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error(errno, "write", path_);
      }
      written += static_cast<std::size_t>(n);
    }
    return ok_status();
  }

  Status sync() override {
    if (::fsync(fd_) != 0) return os_error(errno, "flush", path_);
    return ok_status();
  }

  Status close() override {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return os_error(errno, "close", path_);
    return ok_status();
  }

 private:
  std::filesystem::path path_;
  int fd_;
};

class StandardEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> create_new_file(const std::filesystem::path& path,
                                                        mode_t mode) override {
    FileDescriptor fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (fd.get() < 0) return os_error(errno, "create", path);
    // The umask may have narrowed the mode; secrets must be exactly 0600 and
    // shared files exactly what the caller asked.
    if (::fchmod(fd.get(), mode) != 0) {
      Error error = os_error(errno, "set the mode of", path);
      ::unlink(path.c_str());
      return error;
    }
    return std::unique_ptr<WritableFile>(new StandardFile(path, fd.release()));
  }

  Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes) override {
    // O_NONBLOCK so that a FIFO put where a file was expected cannot block.
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) return os_error(errno, "open", path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return os_error(errno, "stat", path);
    if (!S_ISREG(st.st_mode)) {
      return make_error(ErrorCode::invalid_argument, "'" + path.string() + "' is not a regular file");
    }
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
      return make_error(ErrorCode::invalid_argument,
                        "'" + path.string() + "' is " + std::to_string(st.st_size) +
                            " bytes, more than the limit of " + std::to_string(max_bytes));
    }
    std::string contents;
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error(errno, "read", path);
      }
      if (n == 0) break;
      if (contents.size() + static_cast<std::size_t>(n) > max_bytes) {
        return make_error(ErrorCode::invalid_argument,
                          "'" + path.string() + "' grew past the limit of " + std::to_string(max_bytes) +
                              " bytes while being read");
      }
      contents.append(buffer, static_cast<std::size_t>(n));
    }
    return contents;
  }

  Status rename_file(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return os_error(errno, "rename into '" + to.string() + "'", from);
    return ok_status();
  }

  Status remove_file(const std::filesystem::path& path) override {
    if (::unlink(path.c_str()) != 0) return os_error(errno, "remove", path);
    return ok_status();
  }

  Status sync_directory(const std::filesystem::path& directory) override {
    const auto dir = directory.empty() ? std::filesystem::path(".") : directory;
    FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return os_error(errno, "open directory", dir);
    if (::fsync(fd.get()) != 0) return os_error(errno, "flush directory", dir);
    return ok_status();
  }

  Status create_directories(const std::filesystem::path& directory) override {
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) return os_error(error.value(), "create directory", directory);
    return ok_status();
  }

  Result<std::vector<std::string>> list_directory(const std::filesystem::path& directory) override {
    std::error_code error;
    std::vector<std::string> names;
    for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
      names.push_back(it->path().filename().string());
    }
    if (error) return os_error(error.value(), "list directory", directory);
    std::sort(names.begin(), names.end());
    return names;
  }

  std::chrono::system_clock::time_point wall_clock() override { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point monotonic_clock() override { return std::chrono::steady_clock::now(); }
};

}  // namespace

Env& Env::standard() {
  static StandardEnv env;
  return env;
}

Error os_error(int error_number, const std::string& action, const std::filesystem::path& path) {
  return make_error(error_number == ENOENT ? ErrorCode::not_found
                    : error_number == EACCES || error_number == EPERM ? ErrorCode::permission
                                                                      : ErrorCode::io,
                    "cannot " + action + " '" + path.string() + "': " + std::strerror(error_number));
}

}  // namespace shoal::base
