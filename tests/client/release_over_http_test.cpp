// A device installs releases from a repository on a real HTTP server, as
// from a static file host or CDN: the TUF client's checks hold over HTTP,
// and a tampered file is refused there as on a directory.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include <httplib.h>

#include "logreg_releases.h"
#include "shoal/updater/model_store.h"
#include "shoal/updater/release_installer.h"

using namespace shoal;
using shoal::testing::Releases;
namespace fs = std::filesystem;

namespace {

// Serves `root` over HTTP on loopback while it lives.
class StaticHost {
 public:
  explicit StaticHost(const fs::path& root) {
    server_.set_mount_point("/fleet", root.string());
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~StaticHost() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/fleet"; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_CASE("a device installs releases from an HTTP repository and refuses a tampered one") {
  Releases releases;
  releases.publish(1);
  StaticHost host(releases.dir / "releases");
  auto options = releases.update_options();
  options.repository = host.url();

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
