#include "shoal/base/fault_injecting_env.h"

#include <cerrno>

namespace shoal::base {
namespace {

class FaultInjectingFile final : public WritableFile {
 public:
  FaultInjectingFile(FaultInjectingEnv& env, std::filesystem::path path, std::unique_ptr<WritableFile> file)
      : env_(env), path_(std::move(path)), file_(std::move(file)) {}

  Status append(std::span<const std::uint8_t> bytes) override {
    if (auto status = env_.admit(FileOperation::append, path_); !status) return status;
    return file_->append(bytes);
  }
  Status sync() override {
    if (auto status = env_.admit(FileOperation::sync, path_); !status) return status;
    return file_->sync();
  }
  Status close() override {
    if (auto status = env_.admit(FileOperation::close, path_); !status) return status;
    return file_->close();
  }

 private:
  FaultInjectingEnv& env_;
  std::filesystem::path path_;
  std::unique_ptr<WritableFile> file_;
};

}  // namespace

const char* to_string(FileOperation operation) {
  switch (operation) {
    case FileOperation::create: return "create";
    case FileOperation::append: return "append";
    case FileOperation::sync: return "sync";
    case FileOperation::close: return "close";
    case FileOperation::rename: return "rename";
    case FileOperation::remove: return "remove";
    case FileOperation::sync_directory: return "sync directory";
    case FileOperation::create_directories: return "create directories";
  }
  return "operation";
}

void FaultInjectingEnv::fail_operation(std::size_t index, int error_number) {
  failures_.emplace_back(index, error_number);
}

void FaultInjectingEnv::fail_every(FileOperation kind, int error_number) {
  kind_failures_.emplace_back(kind, error_number);
}

void FaultInjectingEnv::crash_after(std::size_t count) { crash_at_ = count; }

Status FaultInjectingEnv::admit(FileOperation kind, const std::filesystem::path& path) {
  const std::size_t index = operations_++;
  log_.push_back(std::string(to_string(kind)) + " " + path.filename().string());
  if (crash_at_ && index >= *crash_at_) crashed_ = true;
  if (crashed_) {
    return make_error(ErrorCode::io, "cannot " + std::string(to_string(kind)) + " '" + path.string() +
                                         "': the process crashed (injected)");
  }
  for (const auto& [at, error_number] : failures_) {
    if (at == index) return os_error(error_number, std::string(to_string(kind)) + " (injected)", path);
  }
  for (const auto& [failing, error_number] : kind_failures_) {
    if (failing == kind) return os_error(error_number, std::string(to_string(kind)) + " (injected)", path);
  }
  return ok_status();
}

Result<std::unique_ptr<WritableFile>> FaultInjectingEnv::create_new_file(const std::filesystem::path& path,
                                                                         mode_t mode) {
  if (auto status = admit(FileOperation::create, path); !status) return status.error();
  auto file = target_.create_new_file(path, mode);
  if (!file) return file.error();
  return std::unique_ptr<WritableFile>(new FaultInjectingFile(*this, path, std::move(*file)));
}

Result<std::string> FaultInjectingEnv::read_file(const std::filesystem::path& path, std::size_t max_bytes) {
  if (crashed_) return make_error(ErrorCode::io, "cannot read '" + path.string() + "': the process crashed (injected)");
  return target_.read_file(path, max_bytes);
}

Status FaultInjectingEnv::rename_file(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (auto status = admit(FileOperation::rename, to); !status) return status;
  return target_.rename_file(from, to);
}

Status FaultInjectingEnv::remove_file(const std::filesystem::path& path) {
  if (auto status = admit(FileOperation::remove, path); !status) return status;
  return target_.remove_file(path);
}

Status FaultInjectingEnv::sync_directory(const std::filesystem::path& directory) {
  if (auto status = admit(FileOperation::sync_directory, directory); !status) return status;
  return target_.sync_directory(directory);
}

Status FaultInjectingEnv::create_directories(const std::filesystem::path& directory) {
  if (auto status = admit(FileOperation::create_directories, directory); !status) return status;
  return target_.create_directories(directory);
}

Result<std::vector<std::string>> FaultInjectingEnv::list_directory(const std::filesystem::path& directory) {
  if (crashed_) {
    return make_error(ErrorCode::io, "cannot list '" + directory.string() + "': the process crashed (injected)");
  }
  return target_.list_directory(directory);
}

}  // namespace shoal::base
