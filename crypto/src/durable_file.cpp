#include "shoal/crypto/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace shoal::crypto {
namespace {

Error os_error(const std::string& action, const std::filesystem::path& path) {
  return make_error(errno == ENOENT ? ErrorCode::not_found
                    : errno == EACCES || errno == EPERM ? ErrorCode::permission
                                                        : ErrorCode::io,
                    "cannot " + action + " '" + path.string() + "': " + std::strerror(errno));
}

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

std::filesystem::path temporary_sibling(const std::filesystem::path& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto name = "." + path.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
              std::to_string(rng() & 0xffffffff);
  return path.parent_path() / name;
}

Status sync_directory(const std::filesystem::path& directory) {
  const auto dir = directory.empty() ? std::filesystem::path(".") : directory;
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return os_error("open directory", dir);
  if (::fsync(fd.get()) != 0) return os_error("flush directory", dir);
  return ok_status();
}

}  // namespace

Result<DurableFileWriter> DurableFileWriter::create(const std::filesystem::path& path, mode_t mode) {
  const auto temporary = temporary_sibling(path);
  FileDescriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (fd.get() < 0) return os_error("create", temporary);
  // The umask may have narrowed the mode; secrets must be exactly 0600 and
  // shared files exactly what the caller asked.
  if (::fchmod(fd.get(), mode) != 0) {
    Error error = os_error("set the mode of", temporary);
    ::unlink(temporary.c_str());
    return error;
  }
  return DurableFileWriter(path, temporary, fd.release());
}

DurableFileWriter::DurableFileWriter(DurableFileWriter&& other) noexcept
    : path_(std::move(other.path_)), temporary_(std::move(other.temporary_)), fd_(other.fd_) {
  other.fd_ = -1;
  other.temporary_.clear();
}

DurableFileWriter::~DurableFileWriter() { abandon(); }

void DurableFileWriter::abandon() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temporary_.empty()) ::unlink(temporary_.c_str());
  temporary_.clear();
}

Status DurableFileWriter::write(std::span<const std::uint8_t> bytes) {
  if (fd_ < 0) return make_error(ErrorCode::invalid_argument, "write to '" + path_.string() + "' after it was closed");
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      Error error = os_error("write", temporary_);
      abandon();
      return error;
    }
    written += static_cast<std::size_t>(n);
  }
  return ok_status();
}

Status DurableFileWriter::commit() {
  if (fd_ < 0) return make_error(ErrorCode::invalid_argument, "commit of '" + path_.string() + "' after it was closed");
  auto fail = [&](const std::string& action) {
    Error error = os_error(action, temporary_);
    abandon();
    return error;
  };
  if (::fsync(fd_) != 0) return fail("flush");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return fail("close");
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) return fail("rename into '" + path_.string() + "'");
  temporary_.clear();
  return sync_directory(path_.parent_path());
}

Status write_file_durably(const std::filesystem::path& path, std::span<const std::uint8_t> contents,
                          mode_t mode) {
  auto writer = DurableFileWriter::create(path, mode);
  if (!writer) return writer.error();
  if (auto status = writer->write(contents); !status) return status;
  return writer->commit();
}

Status write_file_durably(const std::filesystem::path& path, std::string_view contents, mode_t mode) {
  return write_file_durably(
      path, std::span(reinterpret_cast<const std::uint8_t*>(contents.data()), contents.size()), mode);
}

Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return os_error("open", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return os_error("stat", path);
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
      return os_error("read", path);
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

}  // namespace shoal::crypto
