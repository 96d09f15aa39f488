// HttpFetcher against a real HTTP server on loopback (cpp-httplib): files by
// their repository path, and a hostile server's oversized, missing, failing
// and slow answers refused with the URL named.
#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <thread>

#include <httplib.h>

#include "shoal/updater/http_fetcher.h"
#include "temp_dir.h"

using namespace shoal;
using shoal::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// A static file server for `root`, plus routes that misbehave.
class FileServer {
 public:
  explicit FileServer(const fs::path& root) {
    server_.set_mount_point("/repo", root.string());
    server_.Get("/broken/.*", [](const httplib::Request&, httplib::Response& response) { response.status = 500; });
    server_.Get("/moved/(.*)", [](const httplib::Request& request, httplib::Response& response) {
      response.set_redirect("/repo/" + request.matches[1].str());
    });
    server_.Get("/endless/.*", [](const httplib::Request&, httplib::Response& response) {
      // Declares no length and never ends.
      response.set_chunked_content_provider("application/octet-stream", [](std::size_t, httplib::DataSink& sink) {
        const std::string block(64 * 1024, 'x');
        return sink.write(block.data(), block.size());
      });
    });
    server_.Get("/slow/.*", [this](const httplib::Request&, httplib::Response& response) {
      // A byte, then silence until the client gives up (the slow-retrieval attack).
      response.set_chunked_content_provider("application/octet-stream", [this](std::size_t offset, httplib::DataSink& sink) {
        if (offset == 0) return sink.write("x", 1);
        while (!stopping_.load() && sink.is_writable()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return false;
      });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~FileServer() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& prefix) const { return "http://127.0.0.1:" + std::to_string(port_) + prefix; }

 private:
  httplib::Server server_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_CASE("an HTTP repository serves its files by path, and missing ones are not_found") {
  TempDir dir;
  fs::create_directories(dir / "metadata");
  std::ofstream(dir / "metadata" / "timestamp.json") << R"({"signed":{}})";
  std::ofstream(dir / "metadata" / "a file.json") << "spaced";
  FileServer server(dir.path());
  auto fetcher = updater::HttpFetcher::open(server.url("/repo/"));
  REQUIRE(fetcher.ok());
  CHECK((*fetcher)->describe() == server.url("/repo"));

  auto timestamp = (*fetcher)->fetch("metadata/timestamp.json", 1024);
  REQUIRE(timestamp.ok());
  CHECK(std::string(timestamp->begin(), timestamp->end()) == R"({"signed":{}})");
  auto spaced = (*fetcher)->fetch("metadata/a file.json", 1024);  // percent-encoded on the way
  REQUIRE(spaced.ok());
  CHECK(std::string(spaced->begin(), spaced->end()) == "spaced");
  auto missing = (*fetcher)->fetch("metadata/9.root.json", 1024);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::not_found);
  CHECK_THAT(missing.error().message, Catch::Contains("/repo/metadata/9.root.json"));

  // A redirect within http is followed.
  auto moved = updater::HttpFetcher::open(server.url("/moved"));
  REQUIRE(moved.ok());
  auto followed = (*moved)->fetch("metadata/timestamp.json", 1024);
  REQUIRE(followed.ok());
  CHECK(followed->size() == 13);
}

TEST_CASE("a hostile HTTP repository is cut off at the cap, on errors and when it stalls") {
  TempDir dir;
  fs::create_directories(dir / "targets");
  std::ofstream(dir / "targets" / "big.weights") << std::string(100 * 1024, 'w');
  FileServer server(dir.path());

  auto fetcher = updater::HttpFetcher::open(server.url("/repo"));
  REQUIRE(fetcher.ok());
  auto big = (*fetcher)->fetch("targets/big.weights", 1000);
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().code == ErrorCode::corrupt);
  CHECK_THAT(big.error().message, Catch::Contains("longer than its limit of 1000 bytes"));
  CHECK((*fetcher)->fetch("targets/big.weights", 100 * 1024).ok());  // exactly at the cap is fine

  auto endless = updater::HttpFetcher::open(server.url("/endless"));
  REQUIRE(endless.ok());
  auto flood = (*endless)->fetch("metadata/timestamp.json", 1 << 20);
  REQUIRE_FALSE(flood.ok());
  CHECK_THAT(flood.error().message, Catch::Contains("longer than its limit"));

  auto broken = updater::HttpFetcher::open(server.url("/broken"));
  REQUIRE(broken.ok());
  auto failed = (*broken)->fetch("metadata/timestamp.json", 1024);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code == ErrorCode::io);
  CHECK_THAT(failed.error().message, Catch::Contains("HTTP 500"));

  updater::HttpFetcherOptions impatient;
  impatient.slow_for = std::chrono::seconds(1);
  auto slow = updater::HttpFetcher::open(server.url("/slow"), impatient);
  REQUIRE(slow.ok());
  auto stalled = (*slow)->fetch("metadata/timestamp.json", 1024);
  REQUIRE_FALSE(stalled.ok());
  CHECK(stalled.error().code == ErrorCode::io);

  CHECK_FALSE(updater::HttpFetcher::open("ftp://example.com/repo").ok());
  CHECK_FALSE((*fetcher)->fetch("metadata/../../etc/passwd", 1024).ok());
}
