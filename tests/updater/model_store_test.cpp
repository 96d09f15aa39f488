#include "shoal/updater/model_store.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "fault_sweep.h"
#include "release_fixture.h"

using namespace shoal;
using namespace shoal::updater;
using shoal::testing::ReleaseFixture;

TEST_CASE("the model store keeps the active and the previous model and nothing else") {
  shoal::testing::TempDir temp;
  auto store = ModelStore::open(temp / "models");
  REQUIRE(store.ok());
  CHECK_FALSE(store->load_active()->has_value());
  std::vector<std::string> files;
  for (std::uint64_t version = 1; version <= 3; ++version) {
    auto file = store->stage(ReleaseFixture::model_version(version));
    REQUIRE(file.ok());
    REQUIRE(store->activate(*file).ok());
    files.push_back(*file);
  }
  CHECK(store->active() == files[2]);
  CHECK(store->previous() == files[1]);
  CHECK_FALSE(std::filesystem::exists(temp / "models" / files[0]));

  auto reopened = ModelStore::open(temp / "models");
  REQUIRE(reopened.ok());
  CHECK((*reopened->load_active())->version() == 3);
  REQUIRE(reopened->rollback().ok());
  CHECK((*reopened->load_active())->version() == 2);
  CHECK(reopened->rolled_back() == 3u);
  REQUIRE(reopened->rollback().ok());  // rolling back again undoes the rollback
  CHECK((*reopened->load_active())->version() == 3);
}

TEST_CASE("rollback with no previous model, and a damaged CURRENT, are errors that name the store") {
  shoal::testing::TempDir temp;
  auto store = ModelStore::open(temp / "models");
  REQUIRE(store.ok());
  auto nothing = store->rollback();
  REQUIRE_FALSE(nothing.ok());
  CHECK_THAT(nothing.error().message, Catch::Contains("no previous model"));

  std::ofstream(temp / "models" / "CURRENT") << "active ../../etc/passwd\n";
  auto damaged = ModelStore::open(temp / "models");
  REQUIRE_FALSE(damaged.ok());
  CHECK_THAT(damaged.error().message, Catch::Contains("CURRENT line 1"));
}

namespace {

// Installs `version` into the store at `dir`: stage, then activate.
Status install(const std::filesystem::path& dir, std::uint64_t version, base::Env& env = base::Env::standard()) {
  auto store = ModelStore::open(dir, env);
  if (!store) return store.error();
  auto file = store->stage(ReleaseFixture::model_version(version));
  if (!file) return file.error();
  return store->activate(*file);
}

// The version a restarted device serves, checked to load whole, and the files in the store.
std::uint64_t served_version(const std::filesystem::path& dir) {
  auto store = ModelStore::open(dir);
  REQUIRE(store);
  auto active = store->load_active();
  REQUIRE(active);
  REQUIRE(active->has_value());
  return (*active)->version();
}

}  // namespace

TEST_CASE("a crash between any two disk operations of an install serves the old or the new version") {
  shoal::testing::TempDir temp;
  const auto dir = temp / "models";
  auto prepare = [&] {
    std::filesystem::remove_all(dir);
    REQUIRE(install(dir, 1));
  };
  auto write = [&](base::Env& env) { return install(dir, 2, env); };
  shoal::testing::crash_sweep(prepare, write, [&](std::size_t, std::size_t, bool succeeded) {
    const auto version = served_version(dir);
    CHECK((version == 1 || version == 2));
    if (succeeded) CHECK(version == 2);
    // After the restart the next install goes through and leaves only the files CURRENT names.
    REQUIRE(install(dir, 3));
    CHECK(served_version(dir) == 3);
    auto store = *ModelStore::open(dir);
    auto names = *base::Env::standard().list_directory(dir);
    std::vector<std::string> expected = {"CURRENT", *store.active(), *store.previous()};
    std::sort(expected.begin(), expected.end());
    CHECK(names == expected);
  });
}

TEST_CASE("ENOSPC or EIO anywhere in an install is reported and the device keeps serving a whole version") {
  shoal::testing::TempDir temp;
  const auto dir = temp / "models";
  auto prepare = [&] {
    std::filesystem::remove_all(dir);
    REQUIRE(install(dir, 1));
  };
  std::string message;
  auto write = [&](base::Env& env) {
    auto status = install(dir, 2, env);
    message = status ? "" : status.error().message;
    return status;
  };
  shoal::testing::failure_sweep(prepare, write, [&](std::size_t, int error_number, bool succeeded) {
    const auto version = served_version(dir);
    CHECK((version == 1 || version == 2));
    if (!succeeded) CHECK(message.find(std::strerror(error_number)) != std::string::npos);
    if (version == 1) CHECK_FALSE(succeeded);
  });
}
