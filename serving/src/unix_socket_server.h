// UnixSocketServer: cpp-httplib serving HTTP on a Unix socket. Debian's
// cpp-httplib 0.11 listens only on TCP, but its accept loop and request
// handling work on any stream socket, so this binds the socket itself and
// hands it to listen_after_bind(). The socket file is mode 0600: only this
// user's processes may connect.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include <httplib.h>

#include "shoal/base/result.h"

namespace shoal::serving {

class UnixSocketServer : public httplib::Server {
 public:
  ~UnixSocketServer() override;

  // Binds and listens on `path`. A socket file left there by a process that
  // is gone is replaced; a socket in use, or a file that is not a socket, is
  // refused and left alone. Errors name the path.
  Status bind_unix(const std::filesystem::path& path);

 private:
  std::filesystem::path path_;
  // Which file this server made, so that it removes its own socket only.
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

// Why `path` cannot name a Unix socket (too long, or empty), if it cannot.
std::optional<std::string> unix_socket_path_problem(const std::filesystem::path& path);

}  // namespace shoal::serving
