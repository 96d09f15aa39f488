#include "shoal/protocol/peer_memory_guard.h"

#include <algorithm>

namespace shoal::protocol {
namespace {

// The handshake's greeting and commands, which no message accounts for.
constexpr std::uint64_t kHandshakeBytes = 4096;
// A CurveZMQ MESSAGE command: its name, the nonce, the MAC and the flags byte.
constexpr std::size_t kCurveMessageBytes = 8 + 8 + 16 + 1;

std::string mib(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

std::size_t curve_wire_bytes(std::size_t frame_bytes) {
  const std::size_t body = frame_bytes + kCurveMessageBytes;
  return body + (body <= 255 ? 2 : 9);  // ZMTP's short or long frame header
}

void PeerMemoryGuard::opened(int connection) { connections_[connection] = Connection{}; }

void PeerMemoryGuard::closed(int connection) { connections_.erase(connection); }

void PeerMemoryGuard::delivered(int connection, std::size_t wire_bytes) {
  connections_[connection].delivered += wire_bytes;
}

std::vector<Cut> PeerMemoryGuard::check(const std::map<int, ConnectionSample>& samples) {
  std::vector<Cut> cuts;
  for (const auto& [fd, sample] : samples) {
    const auto found = connections_.find(fd);
    if (found == connections_.end()) continue;
    auto& connection = found->second;
    const std::uint64_t read = sample.received - std::min(sample.received, sample.unread);
    const std::uint64_t accounted = connection.delivered + kHandshakeBytes;
    connection.held = static_cast<std::size_t>(read > accounted ? read - accounted : 0);
    if (!connection.cut && connection.held > budget_.per_peer_bytes) {
      connection.cut = true;
      cuts.push_back({fd, connection.held,
                      "it held " + mib(connection.held) + " of messages not yet whole, over the per-peer budget of " +
                          mib(budget_.per_peer_bytes)});
    }
  }
  // Over the total: cut the largest holders until what is left fits.
  for (std::size_t total = total_held(); total > budget_.total_bytes;) {
    auto largest = connections_.end();
    for (auto it = connections_.begin(); it != connections_.end(); ++it) {
      if (!it->second.cut && (largest == connections_.end() || it->second.held > largest->second.held)) largest = it;
    }
    if (largest == connections_.end() || largest->second.held == 0) break;
    largest->second.cut = true;
    cuts.push_back({largest->first, largest->second.held,
                    "it held the most (" + mib(largest->second.held) + ") while all peers together held " +
                        mib(total) + ", over the total budget of " + mib(budget_.total_bytes)});
    total -= largest->second.held;
  }
  return cuts;
}

std::size_t PeerMemoryGuard::held(int connection) const {
  const auto found = connections_.find(connection);
  return found == connections_.end() ? 0 : found->second.held;
}

std::size_t PeerMemoryGuard::total_held() const {
  std::size_t total = 0;
  for (const auto& [fd, connection] : connections_) {
    if (!connection.cut) total += connection.held;
  }
  return total;
}

std::vector<int> PeerMemoryGuard::connections() const {
  std::vector<int> out;
  for (const auto& [fd, connection] : connections_) out.push_back(fd);
  return out;
}

}  // namespace shoal::protocol
