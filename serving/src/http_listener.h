// HttpListener: a cpp-httplib server bound the way the inference service
// needs, then run with listen_after_bind().
//  - On TCP, with a listen backlog of SOMAXCONN: cpp-httplib 0.11 listens
//    with a backlog of 5, so a burst of apps connecting at once overflows
//    it and waits a second for the kernel to retry.
//  - On a Unix socket, which Debian's cpp-httplib 0.11 cannot listen on,
//    though its accept loop and request handling work on any stream
//    socket: this binds the socket and hands it over. The socket file is
//    mode 0600, so only this user's processes may connect.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <optional>
#include <string>

#include <httplib.h>

#include "shoal/base/result.h"

namespace shoal::serving {

class HttpListener : public httplib::Server {
 public:
  ~HttpListener() override;

  // Binds `host`:`port` (0: a free port); returns the port, or 0 if it cannot.
  int bind_tcp(const std::string& host, int port);

  // Binds and listens on `path`. A socket file left there by a process that
  // is gone is replaced; a socket in use, or a file that is not a socket, is
  // refused and left alone. Errors name the path.
  Status bind_unix(const std::filesystem::path& path);

  // Serves until stop(): listen_after_bind(), remembered so that the
  // destructor closes the socket only if it was never served.
  bool serve();

 private:
  std::atomic<bool> served_{false};
  std::filesystem::path path_;
  // Which file this server made, so that it removes its own socket only.
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

// Why `path` cannot name a Unix socket (too long, or empty), if it cannot.
std::optional<std::string> unix_socket_path_problem(const std::filesystem::path& path);

}  // namespace shoal::serving
