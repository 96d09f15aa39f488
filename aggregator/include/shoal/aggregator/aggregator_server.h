// AggregatorServer: the round coordinator behind a CurveZMQ ROUTER socket.
//
// open() loads the server key, starts the ZAP authenticator over the
// enrolment list, restores the last checkpoint from the state directory (or
// starts from the initial weights file) and binds. run() is a single-threaded
// loop: receive and decode each message, hand it to the coordinator under
// the device key the handshake proved, tick the coordinator, send what it
// queued, and after every applied round write the checkpoint before anything
// else, then the metrics line. A malformed message is answered with a
// refusal and logged; it never stops the loop.
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
#include "shoal/aggregator/metrics_log.h"
#include "shoal/aggregator/round_coordinator.h"
#include "shoal/protocol/transport.h"

namespace shoal::aggregator {

class AggregatorServer {
 public:
  // Called in the server's thread after each finished round, once it is
  // checkpointed, with the global model as the round left it.
  using RoundObserver = std::function<void(const RoundRecord&, const weights::Weights& global)>;

  // `log` receives one human-readable line per event; it must outlive the server.
  static Result<std::unique_ptr<AggregatorServer>> open(const AggregatorConfig& config, std::ostream& log);
  ~AggregatorServer();

  // Serves until `stop` is set or the model reaches config.round.final_version (and its
  // evaluation, if one is due, has closed). Fails only when a checkpoint or
  // the metrics log cannot be written: continuing would break crash safety.
  Status run(const std::atomic<bool>& stop);

  void set_observer(RoundObserver observer) { observer_ = std::move(observer); }
  // The endpoint bound, with the port resolved ("tcp://127.0.0.1:41234").
  std::string endpoint();
  const weights::Weights& global() const { return coordinator_.global(); }

 private:
  AggregatorServer(const AggregatorConfig& config, std::ostream& log, RoundCoordinator coordinator,
                   MetricsLog metrics);
  void handle(protocol::FromPeer& message, Clock::time_point now);
  template <typename M, typename Refuse>
  void handle_secure(const protocol::Envelope& envelope, const DeviceKey& device, Clock::time_point now, Refuse& refuse);
  // Answers a FetchFile on the connection it came from.
  void serve_release_file(const protocol::FromPeer& message);
  // Now and then: devices whose enrolment was revoked are cut off.
  void check_enrolment(Clock::time_point now);
  void send_outgoing();
  Status record_finished();
  std::vector<zmq::message_t> encode(const Outgoing& outgoing);
  zmq::message_t model_frame();

  AggregatorConfig config_;
  std::ostream& log_;
  RoundCoordinator coordinator_;
  MetricsLog metrics_;
  // Devices send nothing larger than an update part.
  protocol::Limits limits_{.max_payload_bytes = protocol::kUpdatePartValues * sizeof(float)};
  zmq::context_t context_;
  std::unique_ptr<protocol::ZapAuthenticator> authenticator_;
  std::optional<zmq::socket_t> socket_;
  std::map<DeviceKey, zmq::message_t> routes_;  // the routing id of each device's latest connection
  std::set<DeviceKey> revoked_;  // connected when their enrolment was revoked: every message refused
  std::uint64_t enrolment_generation_ = 0;
  Clock::time_point next_enrolment_check_{};
  // The global model as a weights file, while frames still hold it: once
  // every send is done it is freed, so a round does not hold a second model.
  std::weak_ptr<const std::vector<std::uint8_t>> encoded_model_;
  std::uint64_t encoded_version_ = 0;
  std::shared_ptr<const std::vector<std::uint8_t>> batch_model_;  // keeps it for one batch of sends
  RoundCosts costs_;
  RoundObserver observer_;
};

}  // namespace shoal::aggregator
