// The inference service on a Unix socket: the same endpoints as on the
// port, a socket only this user may open, and the rules for a path that is
// already taken.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "served_logreg.h"
#include "shoal/serving/inference_service.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::serving;
using nlohmann::json;

namespace {

int connect_to(const std::filesystem::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  return fd;
}

struct Answer {
  int status = 0;
  std::string body;
};

// One HTTP/1.1 request over the socket, answered and closed.
Answer ask(const std::filesystem::path& socket, const std::string& method, const std::string& target,
           const std::string& body = "", const std::string& extra_headers = "") {
  const int fd = connect_to(socket);
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + extra_headers;
  if (!body.empty()) {
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  std::string reply;
  char buffer[4096];
  for (ssize_t got; (got = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, static_cast<std::size_t>(got));
  ::close(fd);
  Answer answer;
  REQUIRE(reply.rfind("HTTP/1.1 ", 0) == 0);
  answer.status = std::stoi(reply.substr(9, 3));
  const auto end_of_headers = reply.find("\r\n\r\n");
  REQUIRE(end_of_headers != std::string::npos);
  answer.body = reply.substr(end_of_headers + 4);
  return answer;
}

std::unique_ptr<InferenceService> start_on(const std::filesystem::path& socket, bool tcp = false) {
  ServiceOptions options;
  options.tcp = tcp;
  options.unix_socket = socket;
  auto service = InferenceService::start(options);
  REQUIRE(service.ok());
  return std::move(service).value();
}

}  // namespace

TEST_CASE("the service answers on a Unix socket only this user may open, and removes it when it stops") {
  shoal::testing::TempDir dir;
  const auto socket = dir / "serve.sock";
  {
    auto service = start_on(socket);
    CHECK(service->port() == 0);
    CHECK(service->url().empty());
    CHECK(service->addresses() == "unix socket " + socket.string());
    struct stat info {};
    REQUIRE(::lstat(socket.c_str(), &info) == 0);
    CHECK(S_ISSOCK(info.st_mode));
    CHECK((info.st_mode & 0777) == 0600);

    CHECK(ask(socket, "GET", "/v2/health/ready").status == 503);
    service->serve(shoal::testing::served_logreg(4), SwapCause::load);
    CHECK(ask(socket, "GET", "/v2/health/ready").status == 200);

    std::vector<float> pixels(784, 0.25f);
    const auto body = json{{"inputs", {{{"name", "input"}, {"shape", {1, 784}}, {"datatype", "FP32"}, {"data", pixels}}}},
                           {"outputs", {{{"name", "class"}}}}}
                          .dump();
    auto answer = ask(socket, "POST", "/v2/models/logreg/infer", body);
    REQUIRE(answer.status == 200);
    const auto expected = service->predict(pixels, 1);
    REQUIRE(expected.ok());
    CHECK(json::parse(answer.body)["model_version"] == "4");
    const auto top = std::max_element(expected->logits.begin(), expected->logits.end()) - expected->logits.begin();
    CHECK(json::parse(answer.body)["outputs"][0]["data"][0] == top);
    // Errors are the same as on the port.
    CHECK(ask(socket, "POST", "/v2/models/other/infer", body).status == 404);
  }
  CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(socket)));
}

TEST_CASE("a Unix socket path in use, or holding another file, is refused and left as it was") {
  shoal::testing::TempDir dir;
  const auto socket = dir / "serve.sock";
  auto first = start_on(socket);
  first->serve(shoal::testing::served_logreg(1), SwapCause::load);

  ServiceOptions same;
  same.tcp = false;
  same.unix_socket = socket;
  auto in_use = InferenceService::start(same);
  REQUIRE_FALSE(in_use.ok());
  CHECK_THAT(in_use.error().message, Catch::Contains(socket.string()) && Catch::Contains("another process serves on it"));
  CHECK(ask(socket, "GET", "/v2/health/ready").status == 200);

  const auto file = dir / "notes.txt";
  std::ofstream(file) << "keep me";
  same.unix_socket = file;
  auto not_socket = InferenceService::start(same);
  REQUIRE_FALSE(not_socket.ok());
  CHECK_THAT(not_socket.error().message, Catch::Contains("not a socket"));
  std::string kept;
  std::getline(std::ifstream(file), kept);
  CHECK(kept == "keep me");

  same.unix_socket = dir / std::string(120, 'x');
  CHECK_THAT(InferenceService::start(same).error().message, Catch::Contains("serve.unix_socket"));
  same.unix_socket.clear();
  CHECK_THAT(InferenceService::start(same).error().message, Catch::Contains("neither serve.port nor serve.unix_socket"));
}

TEST_CASE("a socket file left by a process that is gone is replaced, and the port can be served beside it") {
  shoal::testing::TempDir dir;
  const auto socket = dir / "serve.sock";
  {
    // A socket bound and closed without removing its file: what a crash leaves.
    const int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    REQUIRE(::bind(stale, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    ::close(stale);
  }
  REQUIRE(std::filesystem::is_socket(socket));
  auto service = start_on(socket, /*tcp=*/true);
  service->serve(shoal::testing::served_logreg(2), SwapCause::load);
  CHECK(service->port() > 0);
  CHECK_THAT(service->addresses(), Catch::StartsWith("http://127.0.0.1:") && Catch::EndsWith(" and unix socket " + socket.string()));
  CHECK(json::parse(ask(socket, "GET", "/v2/models/logreg").body)["versions"][0] == "2");
}
