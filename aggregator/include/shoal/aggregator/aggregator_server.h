// AggregatorServer: a RoundService behind a CurveZMQ ROUTER socket.
//
// open() loads the server key, starts the ZAP authenticator over the
// enrolment list, opens the round service (which restores the last
// checkpoint from the state directory, or starts from the initial weights
// file) and binds. run() is a single-threaded loop: receive each message,
// hand it to the service under the device key the handshake proved, tick
// the service (which checkpoints every applied round before anything else,
// then writes the metrics line), and send what it queued. A malformed
// message is answered with a refusal and logged; it never stops the loop.
// Release fetches are served from the release repository on the connection
// they came from. A MemoryWatch keeps what libzmq holds for each peer, and
// for all, within the [limits] budgets, cutting the connections over them.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>

#include <zmq.hpp>

#include "shoal/aggregator/aggregator_config.h"
#include "shoal/aggregator/round_service.h"
#include "shoal/protocol/memory_watch.h"
#include "shoal/protocol/transport.h"

namespace shoal::aggregator {

class AggregatorServer {
 public:
  // `log` receives one human-readable line per event; it must outlive the server.
  static Result<std::unique_ptr<AggregatorServer>> open(const AggregatorConfig& config, std::ostream& log);
  ~AggregatorServer();

  // Serves until `stop` is set or the model reaches config.round.final_version (and its
  // evaluation, if one is due, has closed). Fails only when a checkpoint or
  // the metrics log cannot be written: continuing would break crash safety.
  Status run(const std::atomic<bool>& stop);

  // Called in the server's thread after each finished round, once it is checkpointed.
  void set_observer(RoundService::RoundObserver observer) { service_->set_observer(std::move(observer)); }
  // The endpoint bound, with the port resolved ("tcp://127.0.0.1:41234").
  std::string endpoint();
  const weights::Weights& global() const { return service_->coordinator().global(); }

 private:
  AggregatorServer(const AggregatorConfig& config, std::ostream& log, std::unique_ptr<RoundService> service);
  void handle(protocol::FromPeer& message, Clock::time_point now);
  // Answers a FetchFile on the connection it came from.
  void serve_release_file(const protocol::FromPeer& message, bool enrolled);
  // Now and then: devices whose enrolment was revoked are cut off.
  void check_enrolment(Clock::time_point now);
  // Whether `device` is on the enrolment list, decided once per list
  // generation (the key's parsing and conversion stay off the message path).
  bool enrolled(const DeviceKey& device);
  void send_outgoing();
  // Logs what the memory watch saw: cuts, and closed connections.
  void log_connection_events();

  AggregatorConfig config_;
  std::ostream& log_;
  std::unique_ptr<RoundService> service_;
  // Devices send nothing larger than an update part.
  protocol::Limits limits_{.max_payload_bytes = protocol::kUpdatePartValues * sizeof(float)};
  zmq::context_t context_;
  std::unique_ptr<protocol::ZapAuthenticator> authenticator_;
  std::optional<zmq::socket_t> socket_;
  std::unique_ptr<protocol::MemoryWatch> memory_watch_;  // after socket_: destroyed first
  std::map<int, DeviceKey> connection_devices_;  // the device last heard on each connection
  std::map<DeviceKey, zmq::message_t> routes_;  // the routing id of each device's latest connection
  std::set<DeviceKey> revoked_;  // connected when their enrolment was revoked: every message refused
  std::uint64_t enrolment_generation_ = 0;
  std::map<DeviceKey, bool> enrolled_;  // for enrolment_generation_; only keys that passed a handshake
  Clock::time_point next_enrolment_check_{};
};

}  // namespace shoal::aggregator
