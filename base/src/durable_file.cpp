#include "shoal/base/durable_file.h"

#include <unistd.h>

#include <random>

namespace shoal::base {
namespace {

constexpr std::string_view kTemporaryMarker = ".tmp.";

// ".NAME.tmp.PID.R": R random, so that a file a crashed process left cannot
// block a later one that has the same pid (in a container, the aggregator is
// often pid 1 after every restart); create_new_file's O_EXCL refuses any collision.
std::filesystem::path temporary_sibling(const std::filesystem::path& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto name = "." + path.filename().string() + std::string(kTemporaryMarker) + std::to_string(::getpid()) +
              "." + std::to_string(rng() & 0xffffffff);
  return path.parent_path() / name;
}

}  // namespace

bool is_temporary_file_name(std::string_view name) {
  return name.starts_with('.') && name.find(kTemporaryMarker) != std::string_view::npos;
}

Result<DurableFileWriter> DurableFileWriter::create(const std::filesystem::path& path, mode_t mode, Env& env) {
  auto temporary = temporary_sibling(path);
  auto file = env.create_new_file(temporary, mode);
  if (!file) return file.error();
  return DurableFileWriter(env, path, std::move(temporary), std::move(*file));
}

DurableFileWriter::DurableFileWriter(DurableFileWriter&& other) noexcept
    : env_(other.env_),
      path_(std::move(other.path_)),
      temporary_(std::move(other.temporary_)),
      file_(std::move(other.file_)) {
  other.temporary_.clear();
}

DurableFileWriter::~DurableFileWriter() { abandon(); }

void DurableFileWriter::abandon() {
  file_.reset();
  if (!temporary_.empty()) (void)env_->remove_file(temporary_);
  temporary_.clear();
}

Status DurableFileWriter::write(std::span<const std::uint8_t> bytes) {
  if (!file_) return make_error(ErrorCode::invalid_argument, "write to '" + path_.string() + "' after it was closed");
  if (auto status = file_->append(bytes); !status) {
    abandon();
    return status;
  }
  return ok_status();
}

Status DurableFileWriter::commit() {
  if (!file_) return make_error(ErrorCode::invalid_argument, "commit of '" + path_.string() + "' after it was closed");
  auto fail = [&](Status status) {
    abandon();
    return status;
  };
  if (auto status = file_->sync(); !status) return fail(status);
  auto file = std::move(file_);
  if (auto status = file->close(); !status) return fail(status);
  if (auto status = env_->rename_file(temporary_, path_); !status) return fail(status);
  temporary_.clear();
  return env_->sync_directory(path_.parent_path());
}

Status write_file_durably(const std::filesystem::path& path, std::span<const std::uint8_t> contents, mode_t mode,
                          Env& env) {
  auto writer = DurableFileWriter::create(path, mode, env);
  if (!writer) return writer.error();
  if (auto status = writer->write(contents); !status) return status;
  return writer->commit();
}

Status write_file_durably(const std::filesystem::path& path, std::string_view contents, mode_t mode, Env& env) {
  return write_file_durably(
      path, std::span(reinterpret_cast<const std::uint8_t*>(contents.data()), contents.size()), mode, env);
}

Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes, Env& env) {
  return env.read_file(path, max_bytes);
}

}  // namespace shoal::base
