#include "shoal/updater/model_store.h"

#include <catch2/catch.hpp>

#include <fstream>

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
