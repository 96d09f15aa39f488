// HttpFetcher against a real HTTP server on loopback (cpp-httplib): files by
// their repository path, and a hostile server's oversized, missing, failing
// and slow answers refused with the URL named.
#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>
#include <thread>

#include <httplib.h>

#include "http_file_server.h"
#include "shoal/updater/http_fetcher.h"
#include "temp_dir.h"

using namespace shoal;
using shoal::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// A static file server for `root`, plus routes that misbehave.
class FileServer {
 public:
  explicit FileServer(const fs::path& root) : http_(root, "/repo", [this](httplib::Server& server) { add_routes(server); }) {}
  ~FileServer() { stopping_ = true; }  // before http_ stops its server, so the slow route lets go

  std::string url(const std::string& prefix) const { return http_.url(prefix); }
  static std::string flaky_body() {
    std::string body(200 * 1024, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 % 251);
    return body;
  }
  int broken_hits() const { return broken_hits_.load(); }
  std::vector<std::string> ranges() const {  // the Range header of each flaky request
    std::lock_guard lock(ranges_mutex_);
    return ranges_;
  }

 private:
  void add_routes(httplib::Server& server) {
    server.Get("/broken/.*", [this](const httplib::Request&, httplib::Response& response) {
      ++broken_hits_;
      response.status = 500;
      response.set_content("an error page, not the file", "text/plain");
    });
    server.Get("/forbidden/.*", [](const httplib::Request&, httplib::Response& response) { response.status = 403; });
    // The first answer breaks off halfway through; later ones are whole, or the asked-for range of it.
    server.Get("/flaky/(.*)", [this](const httplib::Request& request, httplib::Response& response) {
      const bool first = [&] {
        std::lock_guard lock(ranges_mutex_);
        ranges_.push_back(request.get_header_value("Range"));
        return ranges_.size() == 1;
      }();
      const std::string body = flaky_body();
      if (first) {
        response.set_content_provider(body.size(), "application/octet-stream",
                                      [body](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                        if (offset >= body.size() / 2) return false;  // the connection drops
                                        return sink.write(body.data(), body.size() / 2);
                                      });
      } else {
        response.set_content(body, "application/octet-stream");  // cpp-httplib answers a Range with 206
      }
    });
    server.Get("/moved/(.*)", [](const httplib::Request& request, httplib::Response& response) {
      response.set_redirect("/repo/" + request.matches[1].str());
    });
    server.Get("/endless/.*", [](const httplib::Request&, httplib::Response& response) {
      // Declares no length and never ends.
      response.set_chunked_content_provider("application/octet-stream", [](std::size_t, httplib::DataSink& sink) {
        const std::string block(64 * 1024, 'x');
        return sink.write(block.data(), block.size());
      });
    });
    server.Get("/slow/.*", [this](const httplib::Request&, httplib::Response& response) {
      // A byte, then silence until the client gives up (the slow-retrieval attack).
      response.set_chunked_content_provider("application/octet-stream", [this](std::size_t offset, httplib::DataSink& sink) {
        if (offset == 0) return sink.write("x", 1);
        while (!stopping_.load() && sink.is_writable()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return false;
      });
    });
  }

  std::atomic<int> broken_hits_{0};
  mutable std::mutex ranges_mutex_;
  std::vector<std::string> ranges_;
  std::atomic<bool> stopping_{false};
  shoal::testing::HttpFileServer http_;  // last: it stops before the state its routes use goes
};

// The error of fetching the repository's timestamp, which must fail.
Error fetch_error(updater::HttpFetcher& fetcher) {
  auto fetched = fetcher.fetch("metadata/timestamp.json", 1024);
  REQUIRE_FALSE(fetched.ok());
  return fetched.error();
}

// Retries in milliseconds, so the tests do not wait out real backoffs.
updater::HttpFetcherOptions quick_retries() {
  updater::HttpFetcherOptions options;
  options.first_retry_delay = std::chrono::milliseconds(5);
  return options;
}

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

  auto broken = updater::HttpFetcher::open(server.url("/broken"), quick_retries());
  REQUIRE(broken.ok());
  const auto failed = fetch_error(**broken);
  CHECK(failed.code == ErrorCode::io);
  CHECK_THAT(failed.message, Catch::Contains("HTTP 500"));
  CHECK(server.broken_hits() == 4);  // retried, then given up
  auto forbidden = updater::HttpFetcher::open(server.url("/forbidden"), quick_retries());
  REQUIRE(forbidden.ok());
  const auto refused = fetch_error(**forbidden);
  CHECK(refused.code == ErrorCode::not_found);

  auto impatient = quick_retries();
  impatient.attempts = 1;
  impatient.slow_for = std::chrono::seconds(1);
  auto slow = updater::HttpFetcher::open(server.url("/slow"), impatient);
  REQUIRE(slow.ok());
  const auto stalled = fetch_error(**slow);
  CHECK(stalled.code == ErrorCode::io);

  CHECK_FALSE(updater::HttpFetcher::open("ftp://example.com/repo").ok());
  CHECK_FALSE((*fetcher)->fetch("metadata/../../etc/passwd", 1024).ok());
}

TEST_CASE("a download cut off halfway is resumed with a Range request for the rest") {
  TempDir dir;
  FileServer server(dir.path());
  auto fetcher = updater::HttpFetcher::open(server.url("/flaky"), quick_retries());
  REQUIRE(fetcher.ok());
  auto fetched = (*fetcher)->fetch("targets/mlp/v2.weights", 1 << 20);
  REQUIRE(fetched.ok());
  const std::string body = FileServer::flaky_body();
  CHECK(std::string(fetched->begin(), fetched->end()) == body);
  const auto ranges = server.ranges();
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].empty());
  CHECK(ranges[1] == "bytes=" + std::to_string(body.size() / 2) + "-");
}

TEST_CASE("retry delays double from the first up to the most, with jitter") {
  using std::chrono::milliseconds;
  CHECK(updater::retry_delay(1, milliseconds(500), milliseconds(30000), 1.0) == milliseconds(500));
  CHECK(updater::retry_delay(2, milliseconds(500), milliseconds(30000), 1.0) == milliseconds(1000));
  CHECK(updater::retry_delay(4, milliseconds(500), milliseconds(30000), 1.0) == milliseconds(4000));
  CHECK(updater::retry_delay(40, milliseconds(500), milliseconds(30000), 1.0) == milliseconds(30000));
  CHECK(updater::retry_delay(2, milliseconds(500), milliseconds(30000), 0.5) == milliseconds(500));
  CHECK(updater::retry_delay(2, milliseconds(500), milliseconds(30000), 1.4) == milliseconds(1400));
  CHECK(updater::retry_delay(2, milliseconds(500), milliseconds(30000), 9.0) == milliseconds(1500));  // clamped
}

TEST_CASE("an HTTPS repository is trusted only through a CA that signed its certificate, and never redirects down") {
  TempDir dir;
  fs::create_directories(dir / "metadata");
  std::ofstream(dir / "metadata" / "timestamp.json") << "{}";
  const fs::path fixtures = SHOAL_UPDATER_FIXTURES;
  const shoal::testing::TlsFiles tls{fixtures / "loopback-tls.pem", fixtures / "loopback-tls.key"};
  shoal::testing::HttpFileServer plain(dir.path(), "/repo");
  shoal::testing::HttpFileServer secure(
      dir.path(), "/repo",
      [&plain](httplib::Server& server) {
        server.Get("/down/(.*)", [&plain](const httplib::Request& request, httplib::Response& response) {
          response.set_redirect(plain.url("/repo/" + request.matches[1].str()));
        });
      },
      &tls);

  auto options = quick_retries();
  options.ca_file = tls.certificate;
  auto trusted = updater::HttpFetcher::open(secure.url("/repo"), options);
  REQUIRE(trusted.ok());
  auto fetched = (*trusted)->fetch("metadata/timestamp.json", 1024);
  REQUIRE(fetched.ok());
  CHECK(fetched->size() == 2);

  // The system's CAs never signed the test certificate.
  auto untrusted = updater::HttpFetcher::open(secure.url("/repo"), quick_retries());
  REQUIRE(untrusted.ok());
  const auto refused = fetch_error(**untrusted);
  CHECK(refused.code == ErrorCode::io);
  CHECK_THAT(refused.message, Catch::Contains("certificate"));

  // From https, a redirect to http is not followed.
  auto downgrading = updater::HttpFetcher::open(secure.url("/down"), options);
  REQUIRE(downgrading.ok());
  const auto downgraded = fetch_error(**downgrading);
  CHECK_THAT(downgraded.message, Catch::Contains("Protocol \"http\" not supported or disabled"));
}

TEST_CASE("a download cut off in a process that then ends is resumed by the next one from what it kept") {
  TempDir dir;
  FileServer server(dir.path());
  auto options = quick_retries();
  options.attempts = 1;  // the first process gives up at the cut: as if it had been killed there
  options.partial_dir = dir / "partial";
  const std::string path = "targets/mlp/v2.weights";
  const std::string body = FileServer::flaky_body();
  {
    auto first = updater::HttpFetcher::open(server.url("/flaky"), options);
    REQUIRE(first.ok());
    REQUIRE_FALSE((*first)->fetch(path, 1 << 20).ok());
    REQUIRE(fs::exists((*first)->partial_path(path)));
    CHECK(fs::file_size((*first)->partial_path(path)) == body.size() / 2);
  }
  auto second = updater::HttpFetcher::open(server.url("/flaky"), options);
  REQUIRE(second.ok());
  auto fetched = (*second)->fetch(path, 1 << 20);
  REQUIRE(fetched.ok());
  CHECK(std::string(fetched->begin(), fetched->end()) == body);
  const auto ranges = server.ranges();
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[1] == "bytes=" + std::to_string(body.size() / 2) + "-");  // only the rest crossed the network
  CHECK_FALSE(fs::exists((*second)->partial_path(path)));  // done: nothing kept
  // Metadata is never kept: it is small, and read whole.
  CHECK((*second)->partial_path("metadata/timestamp.json").parent_path() == dir / "partial");
  CHECK_FALSE((*second)->fetch("metadata/timestamp.json", 1024).ok());
  CHECK(fs::is_empty(dir / "partial"));
}
