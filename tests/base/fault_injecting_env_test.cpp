#include "shoal/base/fault_injecting_env.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>

#include "fault_sweep.h"
#include "shoal/base/durable_file.h"
#include "temp_dir.h"

using namespace shoal::base;
using shoal::testing::TempDir;

namespace {

std::vector<std::string> entries(const std::filesystem::path& dir) {
  return *Env::standard().list_directory(dir);
}

// An empty `dir` but for `target`, which holds "old".
void start_over(const TempDir& dir, const std::filesystem::path& target) {
  std::filesystem::remove_all(dir.path());
  std::filesystem::create_directory(dir.path());
  REQUIRE(write_file_durably(target, std::string_view("old")));
}

}  // namespace

TEST_CASE("a durable write is six disk operations, and a crash between any two leaves old or new") {
  TempDir dir;
  const auto target = dir / "state";
  auto prepare = [&] { start_over(dir, target); };
  auto write = [&](Env& env) { return write_file_durably(target, std::string_view("new contents"), 0644, env); };
  {
    prepare();
    FaultInjectingEnv env;
    REQUIRE(write(env));
    CHECK(shoal::testing::operations_of(env).find("rename state") != std::string::npos);
    CHECK(env.operations() == 6);  // create, append, sync, close, rename, sync directory
  }
  shoal::testing::crash_sweep(prepare, write, [&](std::size_t k, std::size_t, bool succeeded) {
    const auto contents = *read_file(target, 100);
    // The rename is the fifth operation: before it the old file, after it the new.
    CHECK(contents == (k >= 5 ? "new contents" : "old"));
    CHECK(succeeded == (k == 6));
    // A crash can leave the temporary file behind, under a name stores skip.
    for (const auto& name : entries(dir.path())) {
      if (name != "state") CHECK(is_temporary_file_name(name));
    }
  });
}

TEST_CASE("ENOSPC or EIO at any step of a durable write is reported and leaves the old file and no temporary") {
  TempDir dir;
  const auto target = dir / "state";
  auto prepare = [&] { start_over(dir, target); };
  std::string message;
  auto write = [&](Env& env) {
    auto status = write_file_durably(target, std::string_view("new contents"), 0644, env);
    message = status ? "" : status.error().message;
    return status;
  };
  shoal::testing::failure_sweep(prepare, write, [&](std::size_t k, int error_number, bool succeeded) {
    const auto contents = *read_file(target, 100);
    if (k < 4) {  // before the rename: the write fails and the old file stays
      CHECK_FALSE(succeeded);
      CHECK(contents == "old");
      CHECK(message.find(std::strerror(error_number)) != std::string::npos);
      CHECK(entries(dir.path()) == std::vector<std::string>{"state"});
    } else if (k == 4) {  // the rename itself
      CHECK_FALSE(succeeded);
      CHECK(contents == "old");
    } else {  // the directory flush after the rename: reported, the new file in place
      CHECK_FALSE(succeeded);
      CHECK(contents == "new contents");
    }
  });
}

TEST_CASE("a crashed env refuses reads and counts what it was asked") {
  TempDir dir;
  REQUIRE(write_file_durably(dir / "state", std::string_view("kept")));
  FaultInjectingEnv env;
  env.crash_after(0);
  CHECK_FALSE(write_file_durably(dir / "other", std::string_view("x"), 0644, env));
  CHECK(env.crashed());
  auto read = read_file(dir / "state", 100, env);
  REQUIRE_FALSE(read);
  CHECK(read.error().message.find("crashed") != std::string::npos);
  CHECK(*read_file(dir / "state", 100) == "kept");
  CHECK(entries(dir.path()) == std::vector<std::string>{"state"});
}

TEST_CASE("a failure by kind hits every operation of that kind") {
  TempDir dir;
  FaultInjectingEnv env;
  env.fail_every(FileOperation::sync, EIO);
  auto status = write_file_durably(dir / "a", std::string_view("x"), 0644, env);
  REQUIRE_FALSE(status);
  CHECK(status.error().code == shoal::ErrorCode::io);
  CHECK(status.error().message.find("sync (injected)") != std::string::npos);
  CHECK(entries(dir.path()).empty());
}
