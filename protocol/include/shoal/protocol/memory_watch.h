// MemoryWatch: keeps a server socket's peers within their memory budget.
//
// A thread of its own follows the socket's connections through libzmq's
// socket monitor, samples every connection's kernel counts every 10 ms and
// feeds them to a PeerMemoryGuard (peer_memory_guard.h). A connection the
// guard names is shut down (shutdown(2): libzmq then drops it, and the
// unfinished message with it). The thread keeps going while the server's
// own thread is busy (an unmasking, a checkpoint), which is when a hostile
// peer would otherwise gain most.
//
// The server reports each message it receives (delivered) and logs what
// the watch saw (take_events): cuts, and every connection that closed, with
// what it still held. libzmq itself says nothing when it drops a peer, for
// example for a frame over ZMQ_MAXMSGSIZE; the close event is the trace.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/protocol/peer_memory_guard.h"

namespace shoal::protocol {

struct WatchEvent {
  enum class Kind { cut, closed };
  Kind kind;
  int connection;
  std::string address;  // the peer's "ip:port"
  std::size_t held = 0; // bytes it held at the last sample
  std::string why;      // cuts: the guard's reason
};

class MemoryWatch {
 public:
  // Starts watching `socket` (a server socket of `context`); both must
  // outlive the watch, which must be destroyed on the socket's thread.
  static Result<std::unique_ptr<MemoryWatch>> start(zmq::context_t& context, zmq::socket_t& socket,
                                                    MemoryBudget budget);
  MemoryWatch(const MemoryWatch&) = delete;
  MemoryWatch& operator=(const MemoryWatch&) = delete;
  ~MemoryWatch();

  // The server took a message of `wire_bytes` from `connection`.
  void delivered(int connection, std::size_t wire_bytes);
  std::vector<WatchEvent> take_events();
  std::size_t total_held() const;

 private:
  MemoryWatch(zmq::context_t& context, zmq::socket_t& socket, MemoryBudget budget);
  void run(zmq::socket_t monitor);

  zmq::context_t& context_;
  zmq::socket_t& socket_;
  std::string endpoint_;
  mutable std::mutex mutex_;  // guards guard_ and events_
  PeerMemoryGuard guard_;
  std::vector<WatchEvent> events_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace shoal::protocol
