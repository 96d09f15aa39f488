#include "shoal/protocol/memory_watch.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>  // its tcp_info has tcpi_bytes_received; glibc's does not
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <optional>

namespace shoal::protocol {
namespace {

constexpr std::chrono::milliseconds kSampleInterval{10};
constexpr int kEvents = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED;

std::optional<ConnectionSample> sample(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return std::nullopt;
  int unread = 0;
  if (ioctl(fd, SIOCINQ, &unread) != 0) return std::nullopt;
  return ConnectionSample{info.tcpi_bytes_received, static_cast<std::uint64_t>(std::max(unread, 0))};
}

std::string peer_address(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "unknown peer";
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "unknown peer";
}

}  // namespace

Result<std::unique_ptr<MemoryWatch>> MemoryWatch::start(zmq::context_t& context, zmq::socket_t& socket,
                                                        MemoryBudget budget) {
  std::unique_ptr<MemoryWatch> watch(new MemoryWatch(context, socket, budget));
  try {
    if (zmq_socket_monitor(socket.handle(), watch->endpoint_.c_str(), kEvents) != 0) throw zmq::error_t();
    zmq::socket_t monitor(context, zmq::socket_type::pair);
    monitor.connect(watch->endpoint_);
    watch->thread_ = std::thread([raw = watch.get(), m = std::move(monitor)]() mutable { raw->run(std::move(m)); });
  } catch (const zmq::error_t& e) {
    return make_error(ErrorCode::invalid_argument, std::string("cannot watch the server socket's connections: ") + e.what());
  }
  return watch;
}

MemoryWatch::MemoryWatch(zmq::context_t& context, zmq::socket_t& socket, MemoryBudget budget)
    : context_(context),
      socket_(socket),
      endpoint_("inproc://shoal.memory-watch." + std::to_string(reinterpret_cast<std::uintptr_t>(this))),
      guard_(budget) {}

MemoryWatch::~MemoryWatch() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  (void)zmq_socket_monitor(socket_.handle(), nullptr, 0);
}

void MemoryWatch::delivered(int connection, std::size_t wire_bytes) {
  if (connection < 0) return;
  std::lock_guard lock(mutex_);
  guard_.delivered(connection, wire_bytes);
}

std::vector<WatchEvent> MemoryWatch::take_events() {
  std::lock_guard lock(mutex_);
  return std::exchange(events_, {});
}

std::size_t MemoryWatch::total_held() const {
  std::lock_guard lock(mutex_);
  return guard_.total_held();
}

void MemoryWatch::run(zmq::socket_t monitor) {
  std::map<int, std::string> addresses;
  while (!stop_.load()) {
    zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, kSampleInterval);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return;  // the context is shutting down
    }
    // Events first, so that a sample never lands on a connection already gone.
    for (zmq::message_t head; monitor.recv(head, zmq::recv_flags::dontwait);) {
      zmq::message_t endpoint;
      (void)monitor.recv(endpoint, zmq::recv_flags::dontwait);  // every event is two frames
      if (head.size() < 6) continue;
      std::uint16_t event = 0;
      std::uint32_t value = 0;
      std::memcpy(&event, head.data(), 2);
      std::memcpy(&value, static_cast<const char*>(head.data()) + 2, 4);
      const int fd = static_cast<int>(value);
      std::lock_guard lock(mutex_);
      if (event == ZMQ_EVENT_ACCEPTED) {
        guard_.opened(fd);
        addresses[fd] = peer_address(fd);
      } else if (addresses.contains(fd)) {  // DISCONNECTED and CLOSED both end it; report once
        events_.push_back({WatchEvent::Kind::closed, fd, addresses[fd], guard_.held(fd), {}});
        guard_.closed(fd);
        addresses.erase(fd);
      }
    }
    std::map<int, ConnectionSample> samples;
    for (const auto& [fd, address] : addresses) {
      if (auto counts = sample(fd)) samples[fd] = *counts;
    }
    std::lock_guard lock(mutex_);
    for (auto& cut : guard_.check(samples)) {
      ::shutdown(cut.connection, SHUT_RDWR);  // libzmq sees the end of the stream and drops the connection
      events_.push_back({WatchEvent::Kind::cut, cut.connection, addresses[cut.connection], cut.held, std::move(cut.why)});
    }
  }
}

}  // namespace shoal::protocol
