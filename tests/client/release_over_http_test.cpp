// A device installs releases from a repository on a real HTTP server, as
// from a static file host or CDN: the TUF client's checks hold over HTTP,
// and a tampered file is refused there as on a directory.
#include <catch2/catch.hpp>

#include <fstream>

#include "http_file_server.h"
#include "logreg_releases.h"
#include "shoal/updater/model_store.h"
#include "shoal/updater/release_installer.h"

using namespace shoal;
using shoal::testing::Releases;
namespace fs = std::filesystem;

TEST_CASE("a device installs releases from an HTTP repository and refuses a tampered one") {
  Releases releases;
  releases.publish(1);
  shoal::testing::HttpFileServer host(releases.dir / "releases", "/fleet");
  auto options = releases.update_options();
  options.repository = host.url("/fleet");

  auto first = client::update_from_release(options);
  REQUIRE(first.ok());
  CHECK(first->installed);
  CHECK(client::active_release_model(releases.dir / "device").has_value());

  releases.publish(2);
  auto second = client::update_from_release(options);
  REQUIRE(second.ok());
  CHECK(second->installed);
  CHECK_THAT(client::describe_install(*second), Catch::Contains("version 2 is active"));

  // The host serves a changed target: its hash no longer matches the signed metadata.
  releases.publish(3);
  for (const auto& entry : fs::recursive_directory_iterator(releases.dir / "releases" / "targets")) {
    if (entry.is_regular_file() && entry.path().filename().string().find("v3") != std::string::npos) {
      std::fstream file(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(100);
      file.put('\x7f');
    }
  }
  auto tampered = client::update_from_release(options);
  REQUIRE_FALSE(tampered.ok());
  CHECK(tampered.error().code == ErrorCode::verification);
  // Version 2 stays active.
  auto store = updater::ModelStore::open(updater::release_models_dir(releases.dir / "device"));
  REQUIRE(store.ok());
  auto active = store->load_active();
  REQUIRE(active.ok());
  REQUIRE(active->has_value());
  CHECK((*active)->version() == 2);
}

TEST_CASE("metadata from one place and target files from another: a directory and an HTTP host") {
  Releases releases;
  releases.publish(1);
  // The device sees the metadata alone; the target files only on the host.
  fs::create_directories(releases.dir / "metadata-only");
  fs::copy(releases.dir / "releases" / "metadata", releases.dir / "metadata-only" / "metadata",
           fs::copy_options::recursive);
  shoal::testing::HttpFileServer cdn(releases.dir / "releases" / "targets", "/cdn");
  auto options = releases.update_options();
  options.repository = (releases.dir / "metadata-only").string();
  auto without = client::update_from_release(options);
  REQUIRE_FALSE(without.ok());  // no targets/ beside the metadata
  options.targets_url = cdn.url("/cdn");
  auto installed = client::update_from_release(options);
  REQUIRE(installed.ok());
  CHECK(installed->installed);
}
