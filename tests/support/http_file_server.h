// An HTTP server on loopback, while it lives: `root` served under `mount`
// by cpp-httplib's static file handler (which answers Range requests), as a
// static file host or CDN would, plus any routes a test adds.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include <httplib.h>

namespace shoal::testing {

class HttpFileServer {
 public:
  HttpFileServer(const std::filesystem::path& root, const std::string& mount,
                 const std::function<void(httplib::Server&)>& routes = {}) {
    server_.set_mount_point(mount, root.string());
    if (routes) routes(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~HttpFileServer() {
    server_.stop();
    thread_.join();
  }
  HttpFileServer(const HttpFileServer&) = delete;
  HttpFileServer& operator=(const HttpFileServer&) = delete;

  // "http://127.0.0.1:PORT" followed by `path`.
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace shoal::testing
