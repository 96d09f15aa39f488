// What a server hands out of a release repository: only regular files of its
// published parts, never through a link, never blocking on a FIFO.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <fstream>

#include "shoal/updater/repository_fetcher.h"
#include "temp_dir.h"

using namespace shoal;
using shoal::testing::TempDir;
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

struct Repository {
  TempDir dir;
  TempDir outside;
  Repository() {
    write_text(dir / "metadata/timestamp.json", "{\"signed\":1}");
    write_text(dir / "targets/mlp/v1.weights", "0123456789");
    write_text(dir / "staged/targets.json", "{\"unpublished\":true}");
    write_text(outside / "secret", "not for devices");
  }
};

}  // namespace

TEST_CASE("a published file is served in ranges", "[updater][fetch]") {
  Repository repo;
  auto range = updater::read_repository_range(repo.dir.path(), "targets/mlp/v1.weights", 4, 3);
  REQUIRE(range);
  CHECK(range->total_size == 10);
  CHECK(std::string(range->bytes.begin(), range->bytes.end()) == "456");
  auto tail = updater::read_repository_range(repo.dir.path(), "targets/mlp/v1.weights", 8, 100);
  REQUIRE(tail);
  CHECK(tail->bytes.size() == 2);
  auto missing = updater::read_repository_range(repo.dir.path(), "metadata/snapshot.json", 0, 100);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::not_found);
}

TEST_CASE("unpublished and outside paths are refused", "[updater][fetch]") {
  Repository repo;
  for (const std::string path : {"staged/targets.json", "keys/root.key", "../secret", "metadata/../staged/targets.json",
                                 "/etc/passwd", "metadata"}) {
    CAPTURE(path);
    auto range = updater::read_repository_range(repo.dir.path(), path, 0, 100);
    CHECK_FALSE(range);
  }
  auto staged = updater::read_repository_range(repo.dir.path(), "staged/targets.json", 0, 100);
  REQUIRE_FALSE(staged);
  CHECK_THAT(staged.error().message, Catch::Contains("not published"));
}

TEST_CASE("a symbolic link inside the repository is not followed", "[updater][fetch]") {
  Repository repo;
  fs::create_symlink(repo.outside / "secret", repo.dir / "metadata/root.json");
  fs::create_directory_symlink(repo.outside.path(), repo.dir / "targets/elsewhere");
  auto file_link = updater::read_repository_range(repo.dir.path(), "metadata/root.json", 0, 100);
  REQUIRE_FALSE(file_link);
  CHECK_THAT(file_link.error().message, Catch::Contains("link"));
  auto dir_link = updater::read_repository_range(repo.dir.path(), "targets/elsewhere/secret", 0, 100);
  REQUIRE_FALSE(dir_link);
  CHECK_THAT(dir_link.error().message, Catch::Contains("link"));
}

TEST_CASE("a FIFO or a directory is refused without blocking", "[updater][fetch]") {
  Repository repo;
  REQUIRE(::mkfifo((repo.dir / "targets/pipe").c_str(), 0600) == 0);
  // Without O_NONBLOCK this open would wait for a writer forever.
  auto fifo = updater::read_repository_range(repo.dir.path(), "targets/pipe", 0, 100);
  REQUIRE_FALSE(fifo);
  CHECK_THAT(fifo.error().message, Catch::Contains("not a regular file"));
  auto dir = updater::read_repository_range(repo.dir.path(), "targets/mlp", 0, 100);
  REQUIRE_FALSE(dir);
  CHECK_THAT(dir.error().message, Catch::Contains("not a regular file"));
}
