// `shoal-agent serve --config` as a process, answering an app over HTTP
// while `shoal-agent update` and `shoal-agent rollback`, run as other
// processes against the same state directory, swap the release it serves.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "child_process.h"
#include "e2e_files.h"
#include "e2e_releases.h"
#include "temp_dir.h"

using namespace shoal;
using shoal::testing::ChildProcess;
using shoal::testing::LogregReleases;
using shoal::testing::eventually;
using shoal::testing::TempDir;
using shoal::testing::word_after;
using shoal::testing::write_text;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string infer_body() {
  std::vector<int> pixels(784);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<int>(i % 256);
  return json{{"inputs", {{{"name", "input"}, {"shape", {1, 1, 28, 28}}, {"datatype", "UINT8"}, {"data", pixels}}}}}
      .dump();
}

}  // namespace

TEST_CASE("shoal-agent serve answers an app without a failure while other processes install and roll back") {
  TempDir dir;
  LogregReleases releases(dir.path());
  write_text(dir / "agent.toml",
             "[agent]\nname = \"device\"\nstate_dir = \"device\"\n[model]\nname = \"logreg\"\nthreads = 1\n"
             "[release]\nrepository = \"releases\"\ntrusted_root = \"releases/metadata/1.root.json\"\n"
             "check_every_s = 0\n[serve]\nport = 0\n");
  auto command = [&](std::vector<std::string> argv, const std::string& log_name) {
    argv.insert(argv.begin(), SHOAL_AGENT);
    ChildProcess process(argv, dir / log_name);
    INFO(process.log());
    REQUIRE(process.wait() == 0);
  };

  // Before any release the service is up, but not ready.
  ChildProcess serve({SHOAL_AGENT, "serve", "--config", (dir / "agent.toml").string()}, dir / "serve.log");
  INFO(serve.log());
  std::string port;
  REQUIRE(eventually([&] { return !(port = word_after(serve.log(), "serving apps at http://127.0.0.1:")).empty(); }, 60s));
  httplib::Client app("127.0.0.1", std::stoi(port));
  auto ready = app.Get("/v2/health/ready");
  REQUIRE(ready);
  CHECK(ready->status == 503);

  releases.publish(1);
  command({"update", "--config", (dir / "agent.toml").string()}, "update-1.log");
  REQUIRE(eventually([&] {
    auto answer = app.Get("/v2/health/ready");
    return answer && answer->status == 200;
  }, 60s));

  // An app asks without pause; the versions it sees follow the installs and the rollback.
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> last_seen{0};
  std::atomic<int> failed{0};
  std::vector<std::uint64_t> seen;  // each change of the version answered
  std::thread client([&] {
    httplib::Client own("127.0.0.1", std::stoi(port));
    const std::string body = infer_body();
    while (!done.load()) {
      auto answer = own.Post("/v2/models/logreg/infer", body, "application/json");
      if (!answer || answer->status != 200) {
        ++failed;
        continue;
      }
      const auto version = std::stoull(json::parse(answer->body)["model_version"].get<std::string>());
      if (seen.empty() || seen.back() != version) seen.push_back(version);
      last_seen = version;
    }
  });
  auto await_version = [&](std::uint64_t version) {
    return eventually([&] { return last_seen.load() == version || failed.load() > 0; }, 60s) && failed.load() == 0;
  };
  CHECK(await_version(1));
  releases.publish(2);
  command({"update", "--config", (dir / "agent.toml").string()}, "update-2.log");
  CHECK(await_version(2));
  releases.publish(3);
  command({"update", "--config", (dir / "agent.toml").string()}, "update-3.log");
  CHECK(await_version(3));
  command({"rollback", "--state-dir", (dir / "device").string()}, "rollback.log");
  CHECK(await_version(2));
  done = true;
  client.join();

  CHECK(failed.load() == 0);
  CHECK(seen == std::vector<std::uint64_t>{1, 2, 3, 2});
  auto metrics = app.Get("/metrics");
  REQUIRE(metrics);
  CHECK_THAT(metrics->body, Catch::Contains("shoal_serving_model_swaps_total{cause=\"install\"} 2"));
  CHECK_THAT(metrics->body, Catch::Contains("shoal_serving_model_swaps_total{cause=\"rollback\"} 1"));
  CHECK_THAT(serve.log(), Catch::Contains("serving logreg version 3 (installed)"));
  CHECK_THAT(serve.log(), Catch::Contains("serving logreg version 2 (rolled back to)"));
  const int status = serve.kill(SIGTERM);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
