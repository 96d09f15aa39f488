// RoundService: what the aggregator does around its RoundCoordinator,
// short of the network. It restores the coordinator from the last
// checkpoint in the state directory (or starts from the initial weights),
// decodes each device message and hands it to the coordinator, encodes what
// the coordinator queued (the global model as one frame per version, shared
// by every message that carries it), and after every finished round writes
// the checkpoint before anything else, then the metrics line and the log
// line. AggregatorServer runs it behind a CurveZMQ socket; the fleet engine
// runs it in virtual time. Times in the metrics log are seconds after
// `origin` on the caller's clock.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "shoal/aggregator/aggregator_config.h"
#include "shoal/aggregator/metrics_log.h"
#include "shoal/aggregator/rollout_guard.h"
#include "shoal/aggregator/round_coordinator.h"
#include "shoal/crypto/random_source.h"
#include "shoal/protocol/envelope.h"

namespace shoal::aggregator {

// One message ready for the transport.
struct EncodedMessage {
  DeviceKey device;
  std::vector<zmq::message_t> frames;
  std::size_t bytes = 0;  // of all frames
};

class RoundService {
 public:
  // Called after each finished round, once it is checkpointed, with the
  // bytes it moved and the global model as the round left it.
  using RoundObserver = std::function<void(const RoundRecord&, const RoundCosts&, const weights::Weights& global)>;

  // `log` receives one human-readable line per event and `random` serves
  // the coordinator; both must outlive the service. `metrics` says where
  // the wall-clock fields of the metrics log go.
  static Result<std::unique_ptr<RoundService>> open(const AggregatorConfig& config, std::ostream& log,
                                                    Clock::time_point origin, MetricsOptions metrics = {},
                                                    crypto::RandomSource& random = crypto::system_random());

  // A message from `device` (the key the transport proved), `bytes` long as
  // received. A malformed or unexpected one is refused and logged.
  void on_message(const DeviceKey& device, const protocol::Decoded<protocol::Envelope>& message, std::size_t bytes,
                  Clock::time_point now);
  // Refuses a message for a reason of the transport's (a revoked device).
  void refuse(const DeviceKey& device, const std::string& fault, const std::string& detail) {
    coordinator_.refuse_message(device, fault, detail);
  }
  void on_revoked(const DeviceKey& device, Clock::time_point now) { coordinator_.on_revoked(device, now); }
  // Ticks the coordinator and records what finished (checkpoint, metrics,
  // log, observer), then ticks again so the next round may start. Fails
  // only when a checkpoint or the metrics log cannot be written:
  // continuing would break crash safety.
  Status on_tick(Clock::time_point now);
  // The queued messages, encoded.
  std::vector<EncodedMessage> take_outgoing();
  // Counts bytes the transport sent, for the metrics log.
  void count_sent(std::size_t bytes) { costs_.bytes_out += bytes; }

  // The model reached config.round.final_version (and its evaluation, if
  // one is due, closed), or no further round can start.
  bool done() const;
  // Logs why the service is done.
  void log_done();

  void set_observer(RoundObserver observer) { observer_ = std::move(observer); }
  const RoundCoordinator& coordinator() const { return coordinator_; }
  const RolloutGuard& rollout_guard() const { return rollout_guard_; }
  MetricsLog& metrics() { return metrics_; }

 private:
  RoundService(const AggregatorConfig& config, std::ostream& log, Clock::time_point origin, RoundCoordinator coordinator,
               MetricsLog metrics, RolloutGuard guard);
  void on_health_report(const DeviceKey& device, const protocol::HealthReport& message);
  // At most once a second: halts the rollouts the reports say must stop.
  void check_rollouts(Clock::time_point now);
  template <typename M>
  void handle_secure(const protocol::Envelope& envelope, const DeviceKey& device, Clock::time_point now);
  void refuse_undecodable(const DeviceKey& device, const protocol::DecodeError& error);
  Status record_finished();
  zmq::message_t model_frame();

  AggregatorConfig config_;
  std::ostream& log_;
  Clock::time_point origin_;
  RoundCoordinator coordinator_;
  MetricsLog metrics_;
  // The global model as a weights file, while frames still hold it: once
  // every send is done it is freed, so a round does not hold a second model.
  std::weak_ptr<const std::vector<std::uint8_t>> encoded_model_;
  std::uint64_t encoded_version_ = 0;
  RoundCosts costs_;
  RoundObserver observer_;
  RolloutGuard rollout_guard_;
  Clock::time_point next_rollout_check_{};
  Status health_metrics_status_ = ok_status();
};

// "ed25519:1a2b3c4d5e6f": enough of a device key for a log line.
inline std::string short_key(const DeviceKey& device) { return device.substr(0, 20); }

}  // namespace shoal::aggregator
