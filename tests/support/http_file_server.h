// An HTTP server on loopback, while it lives: `root` served under `mount`
// by cpp-httplib's static file handler (which answers Range requests), as a
// static file host or CDN would, plus any routes a test adds. Given a
// certificate and key, it serves HTTPS.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <httplib.h>

namespace shoal::testing {

struct TlsFiles {
  std::filesystem::path certificate, key;
};

class HttpFileServer {
 public:
  HttpFileServer(const std::filesystem::path& root, const std::string& mount,
                 const std::function<void(httplib::Server&)>& routes = {}, const TlsFiles* tls = nullptr)
      : server_(tls ? std::make_unique<httplib::SSLServer>(tls->certificate.c_str(), tls->key.c_str())
                    : std::make_unique<httplib::Server>()),
        scheme_(tls ? "https" : "http") {
    if (!server_->is_valid()) throw std::runtime_error("the test server cannot load its certificate");
    server_->set_mount_point(mount, root.string());
    if (routes) routes(*server_);
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::yield();
  }
  ~HttpFileServer() {
    server_->stop();
    thread_.join();
  }
  HttpFileServer(const HttpFileServer&) = delete;
  HttpFileServer& operator=(const HttpFileServer&) = delete;

  // "http://127.0.0.1:PORT" (or https) followed by `path`.
  std::string url(const std::string& path) const {
    return scheme_ + "://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::string scheme_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace shoal::testing
