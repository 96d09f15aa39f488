// The guard's arithmetic: what a connection holds is what the kernel passed
// to libzmq less what the application took, and the budgets cut at it.
#include "shoal/protocol/peer_memory_guard.h"

#include <catch2/catch.hpp>

using namespace shoal::protocol;

namespace {
constexpr std::size_t kMiB = std::size_t{1} << 20;
}

TEST_CASE("a connection is cut once what libzmq read from it, less what was delivered, passes the per-peer budget") {
  PeerMemoryGuard guard({.per_peer_bytes = 8 * kMiB, .total_bytes = 64 * kMiB});
  guard.opened(7);
  // 6 MiB read, 2 MiB still in the kernel's buffer and not counted, 1 MiB delivered.
  guard.delivered(7, kMiB);
  CHECK(guard.check({{7, {8 * kMiB, 2 * kMiB}}}).empty());
  CHECK(guard.held(7) == 5 * kMiB - 4096);  // less the handshake's allowance
  const auto cuts = guard.check({{7, {12 * kMiB, 0}}});
  REQUIRE(cuts.size() == 1);
  CHECK(cuts[0].connection == 7);
  CHECK(cuts[0].why.find("over the per-peer budget of 8 MiB") != std::string::npos);
  CHECK(guard.check({{7, {20 * kMiB, 0}}}).empty());  // cut once
  guard.closed(7);
  CHECK(guard.connections().empty());
}

TEST_CASE("over the total budget the largest holders are cut until the rest fits") {
  PeerMemoryGuard guard({.per_peer_bytes = 16 * kMiB, .total_bytes = 20 * kMiB});
  for (int fd : {3, 4, 5}) guard.opened(fd);
  const auto cuts = guard.check({{3, {10 * kMiB, 0}}, {4, {12 * kMiB, 0}}, {5, {2 * kMiB, 0}}});
  REQUIRE(cuts.size() == 1);
  CHECK(cuts[0].connection == 4);
  CHECK(cuts[0].why.find("total budget of 20 MiB") != std::string::npos);
  CHECK(guard.total_held() < 20 * kMiB);
}

TEST_CASE("a delivered stream holds nothing, and a reused descriptor starts afresh") {
  PeerMemoryGuard guard({});
  guard.opened(9);
  std::uint64_t wire = 4096;
  for (int i = 0; i < 100; ++i) {
    guard.delivered(9, curve_wire_bytes(kMiB));
    wire += curve_wire_bytes(kMiB);
  }
  CHECK(guard.check({{9, {wire, 0}}}).empty());
  CHECK(guard.held(9) == 0);
  guard.closed(9);
  guard.opened(9);
  CHECK(guard.check({{9, {100, 0}}}).empty());
  CHECK(guard.held(9) == 0);
  CHECK(curve_wire_bytes(10) == 10 + 33 + 2);
  CHECK(curve_wire_bytes(kMiB) == kMiB + 33 + 9);
}
