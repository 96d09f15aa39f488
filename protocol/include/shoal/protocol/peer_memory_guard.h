// What libzmq holds for each peer, and which connections to cut for it.
//
// libzmq hands a multipart message to the application only once every
// frame has arrived, and ZMQ_MAXMSGSIZE bounds one frame, not a message:
// one peer sending a message of endless 1 MiB frames would make the process
// hold all of them. Nothing in libzmq bounds that, so the guard measures it
// from outside. For every connection the kernel says how many bytes it has
// received (TCP_INFO) and how many still wait unread in its buffer
// (SIOCINQ); what libzmq has read but not yet delivered is the difference
// less what the application has taken from that connection. A connection
// over the per-peer budget is cut, and while all of them together are over
// the total budget the one holding most is cut, so no peer, and no crowd of
// peers, can make the process hold more than the budgets plus what arrives
// between two checks.
//
// Pure logic: MemoryWatch (memory_watch.h) feeds it the samples and cuts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shoal::protocol {

struct MemoryBudget {
  std::size_t per_peer_bytes = std::size_t{64} << 20;
  std::size_t total_bytes = std::size_t{1} << 30;
};

// The kernel's counts for one TCP connection.
struct ConnectionSample {
  std::uint64_t received = 0;  // bytes received on it since it opened
  std::uint64_t unread = 0;    // of those, bytes libzmq has not read yet
};

struct Cut {
  int connection = -1;
  std::size_t held = 0;
  std::string why;
};

// The bytes one message took on the wire under CurveZMQ, from its frame sizes.
std::size_t curve_wire_bytes(std::size_t frame_bytes);

class PeerMemoryGuard {
 public:
  explicit PeerMemoryGuard(MemoryBudget budget) : budget_(budget) {}

  // A connection opened (its counts start from zero) or closed.
  void opened(int connection);
  void closed(int connection);
  // The application took a message of `wire_bytes` from the connection.
  void delivered(int connection, std::size_t wire_bytes);
  // Updates what each sampled connection holds and returns those to cut,
  // each once; connections not sampled keep their last figure.
  std::vector<Cut> check(const std::map<int, ConnectionSample>& samples);

  std::size_t held(int connection) const;
  std::size_t total_held() const;
  std::vector<int> connections() const;

 private:
  struct Connection {
    std::uint64_t delivered = 0;
    std::size_t held = 0;
    bool cut = false;
  };

  MemoryBudget budget_;
  std::map<int, Connection> connections_;
};

}  // namespace shoal::protocol
