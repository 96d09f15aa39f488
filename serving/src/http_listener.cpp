#include "http_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoal::serving {
namespace {

sockaddr_un address_of(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.native().size());
  return address;
}

Status failed(const std::filesystem::path& path, const std::string& what) {
  return make_error(ErrorCode::io, "unix socket '" + path.string() + "': " + what);
}

// Whether a process accepts connections on the socket at `path`.
bool someone_listens(const std::filesystem::path& path) {
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  const auto address = address_of(path);
  const bool connected = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(probe);
  return connected;
}

}  // namespace

std::optional<std::string> unix_socket_path_problem(const std::filesystem::path& path) {
  if (path.empty()) return "the path is empty";
  if (path.native().size() >= sizeof(sockaddr_un::sun_path)) {
    return "the path is " + std::to_string(path.native().size()) + " bytes; a Unix socket's is at most " +
           std::to_string(sizeof(sockaddr_un::sun_path) - 1);
  }
  return std::nullopt;
}

HttpListener::~HttpListener() {
  // Bound but never served (another listener of the service failed to bind). Once served, cpp-httplib
  // closes it, and may leave its number behind.
  if (!served_.load()) {
    if (const int left = svr_sock_.exchange(INVALID_SOCKET); left != INVALID_SOCKET) ::close(left);
  }
  if (path_.empty()) return;
  struct stat info {};
  if (::lstat(path_.c_str(), &info) == 0 && info.st_dev == device_ && info.st_ino == inode_) ::unlink(path_.c_str());
}

bool HttpListener::serve() {
  served_ = true;
  return listen_after_bind();
}

int HttpListener::bind_tcp(const std::string& host, int port) {
  const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : 0);
  // Listening again on a listening socket changes only its backlog.
  if (bound > 0) ::listen(svr_sock_, SOMAXCONN);
  return bound > 0 ? bound : 0;
}

Status HttpListener::bind_unix(const std::filesystem::path& path) {
  if (auto problem = unix_socket_path_problem(path)) return failed(path, *problem);
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) return failed(path, "a file that is not a socket is there; it is left alone");
    if (someone_listens(path)) return failed(path, "another process serves on it");
    ::unlink(path.c_str());  // left by a process that is gone
  }
  const int socket = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (socket < 0) return failed(path, std::strerror(errno));
  const auto address = address_of(path);
  // Nothing can connect between bind and listen, so the mode is set before anyone can.
  if (::bind(socket, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(socket);
    return failed(path, std::strerror(error));
  }
  struct stat made {};
  if (::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0 || ::lstat(path.c_str(), &made) != 0 ||
      ::listen(socket, SOMAXCONN) != 0) {
    const int error = errno;
    ::close(socket);
    ::unlink(path.c_str());
    return failed(path, std::strerror(error));
  }
  path_ = path;
  device_ = made.st_dev;
  inode_ = made.st_ino;
  svr_sock_ = socket;
  return ok_status();
}

}  // namespace shoal::serving
