// Fault injection: ways to make a device misbehave on purpose, for tests,
// simulations and benchmarks. Nothing here is for a production device: apps
// that link the agent never set these, and shoal-agent reads them only from
// its config's [debug] section. The fleet engine models dropouts itself (a
// device that vanishes goes offline), so it needs none of them.
#pragma once

#include <cstdint>
#include <functional>

namespace shoal::client {

// Where a device stops answering in a round: before its update (in secure
// mode, before advertising keys), before sharing keys, before its masked
// input, before unmasking.
enum class DropPoint { none, before_report, before_sharing, before_input, before_unmasking };

// Faults of the round logic itself (DeviceSession).
struct SessionFaults {
  // From round N on, train but never send the update (in secure mode: share
  // keys, then never send the masked input), so a test can kill the device
  // at a known point mid-round. 0: off.
  std::uint64_t hold_updates_from_round = 0;
  // Where, if anywhere, the device drops out of a round; null: never.
  std::function<DropPoint(std::uint64_t round)> drop_out;
};

// Faults and audit aids of the socket-driven agent (client::Agent).
struct AgentFaults {
  SessionFaults session;
  // Write each update sent, and the model it was trained from, to
  // <state_dir>/updates/ (round-<N>.update, base-v<K>.weights).
  bool keep_updates = false;
  // Answer each train task at once with an all-zero update, training
  // nothing, so a round costs only its messages (round-overhead benchmark).
  bool zero_update = false;
};

}  // namespace shoal::client
