#include "shoal/aggregator/round_service.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "shoal/aggregator/checkpoint.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/protocol/secagg_messages.h"
#include "shoal/weights/weights_file.h"

namespace shoal::aggregator {
namespace {

std::string format_double(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

// Privacy spent before a restart counts against the budget after it.
Status resume_privacy(RoundCoordinator& coordinator, const std::optional<PrivacyState>& saved, std::uint64_t version,
                      const AggregatorConfig& config, std::ostream& log) {
  const auto& privacy = config.round.privacy;
  if (!saved) {
    if (privacy.enabled() && version > 0) {
      log << "the checkpoint at model version " << version
          << " records no privacy spent: its rounds were not differentially private, and epsilon counts only the "
             "rounds from here on\n";
    }
    return ok_status();
  }
  if (auto status = coordinator.restore_privacy(*saved); !status) return status;
  if (privacy.enabled()) {
    const auto spent = coordinator.accountant().spent(privacy.delta);
    log << "privacy spent so far: epsilon " << format_double("%.3f", spent.epsilon) << " at delta "
        << format_double("%g", privacy.delta) << "\n";
  }
  if (privacy.adaptive_clipping) {
    log << "adaptive clipping resumes at clip norm " << format_double("%.4g", coordinator.clip_norm()) << "\n";
  }
  return ok_status();
}

// The starting point: the last checkpoint, or the initial weights at round 0.
Result<RoundCoordinator> restore_coordinator(const AggregatorConfig& config, std::ostream& log,
                                             crypto::RandomSource& random) {
  auto checkpoint = read_checkpoint(config.state_dir, *config.env);
  if (!checkpoint) return checkpoint.error();
  if (*checkpoint) {
    auto& saved = **checkpoint;
    const auto configured = std::string(strategy_name(config.strategy.kind));
    if (saved.strategy != configured) {
      return make_error(ErrorCode::invalid_argument,
                        config.state_dir.string() + ": the checkpoint was made with strategy " + saved.strategy +
                            " but the config says " + configured +
                            "; use the same strategy, or start from a fresh state directory");
    }
    auto optimizer = ServerOptimizer::create(config.strategy, saved.global.layout().parameter_value_count());
    if (!optimizer) return optimizer.error();
    if (auto status = optimizer->restore(std::move(saved.first_moment), std::move(saved.second_moment)); !status) {
      return make_error(ErrorCode::corrupt, config.state_dir.string() + ": " + status.error().message);
    }
    log << "resuming from checkpoint in " << config.state_dir.string() << ": model version " << saved.global.version()
        << ", " << saved.rounds_started << " rounds started\n";
    const auto version = saved.global.version();
    auto coordinator = RoundCoordinator::create(config.round, std::move(saved.global), std::move(optimizer).value(),
                                                saved.rounds_started, random);
    if (!coordinator) return coordinator.error();
    if (auto status = resume_privacy(*coordinator, saved.privacy, version, config, log); !status) {
      return make_error(ErrorCode::corrupt, config.state_dir.string() + ": " + status.error().message);
    }
    return coordinator;
  }
  if (config.initial_weights.empty()) {
    return make_error(ErrorCode::invalid_argument, config.state_dir.string() +
                                                       " has no checkpoint, and no server.initial_weights is set "
                                                       "to start from");
  }
  auto initial = weights::read_weights_file(config.initial_weights);
  if (!initial) return initial.error();
  auto optimizer = ServerOptimizer::create(config.strategy, initial->layout().parameter_value_count());
  if (!optimizer) return optimizer.error();
  log << "starting from " << config.initial_weights.string() << ": model version " << initial->version() << ", "
      << initial->layout().value_count() << " values\n";
  return RoundCoordinator::create(config.round, std::move(initial).value(), std::move(optimizer).value(), 0, random);
}

}  // namespace

Result<std::unique_ptr<RoundService>> RoundService::open(const AggregatorConfig& config, std::ostream& log,
                                                         Clock::time_point origin, MetricsOptions metrics_options,
                                                         crypto::RandomSource& random) {
  auto coordinator = restore_coordinator(config, log, random);
  if (!coordinator) return coordinator.error();
  if (const auto& local = coordinator->local_tensors(); !local.empty()) {
    log << "the layout keeps " << local.size() << " tensors local to the devices (FedBN):";
    for (const auto t : local) log << " " << coordinator->global().layout().tensors()[t].name;
    log << "\n";
  }
  auto metrics = MetricsLog::open(config.metrics_path(), std::move(metrics_options));
  if (!metrics) return metrics.error();
  auto guard = RolloutGuard::open(config.rollout, config.release_repository);
  if (!guard) return guard.error();
  if (config.rollout.enabled()) {
    log << "rollouts in " << config.release_repository.string() << " halt by themselves when more than "
        << format_double("%g", 100 * config.rollout.policy.max_failure_share) << "% of the devices trying a version fail, "
        << "or its held-out accuracy falls by more than "
        << format_double("%g", 100 * config.rollout.policy.max_accuracy_drop) << "%\n";
  }
  return std::unique_ptr<RoundService>(new RoundService(config, log, origin, std::move(coordinator).value(),
                                                        std::move(metrics).value(), std::move(guard).value()));
}

RoundService::RoundService(const AggregatorConfig& config, std::ostream& log, Clock::time_point origin,
                           RoundCoordinator coordinator, MetricsLog metrics, RolloutGuard guard)
    : config_(config),
      log_(log),
      origin_(origin),
      coordinator_(std::move(coordinator)),
      metrics_(std::move(metrics)),
      rollout_guard_(std::move(guard)) {}

bool RoundService::done() const {
  const auto final_version = config_.round.final_version;
  const bool reached = final_version > 0 && coordinator_.global().version() >= final_version;
  const bool stopped = !coordinator_.stopped_reason().empty() && !coordinator_.round_open();
  return (reached || stopped) && !coordinator_.evaluation_open() && !coordinator_.has_finished();
}

void RoundService::log_done() {
  if (!done()) return;
  if (!coordinator_.stopped_reason().empty()) {
    log_ << "no further rounds: " << coordinator_.stopped_reason() << "; stopping at model version "
         << coordinator_.global().version() << "\n";
  } else {
    log_ << "model version " << coordinator_.global().version() << " reached: stopping\n";
  }
}

void RoundService::refuse_undecodable(const DeviceKey& device, const protocol::DecodeError& error) {
  log_ << "dropped a message from " << short_key(device) << ": " << error.describe() << "\n";
  coordinator_.refuse_message(device, to_string(error.fault), error.describe());
}

void RoundService::on_message(const DeviceKey& device, const protocol::Decoded<protocol::Envelope>& message,
                              std::size_t bytes, Clock::time_point now) {
  costs_.bytes_in += bytes;
  if (!message) return refuse_undecodable(device, message.error());
  const auto& envelope = *message;
  switch (envelope.type()) {
    case protocol::MessageType::hello: {
      auto hello = protocol::decode<protocol::Hello>(envelope);
      if (!hello) return refuse_undecodable(device, hello.error());
      log_ << "device " << short_key(device) << " connected (" << hello->agent_version << ", model version "
           << hello->model_version << (hello->eligible ? ", eligible" : ", not eligible") << ")\n";
      return coordinator_.on_hello(device, *hello, now);
    }
    case protocol::MessageType::heartbeat: {
      auto heartbeat = protocol::decode<protocol::Heartbeat>(envelope);
      if (!heartbeat) return refuse_undecodable(device, heartbeat.error());
      return coordinator_.on_heartbeat(device, heartbeat->sequence, now);
    }
    case protocol::MessageType::update_report: {
      auto report = protocol::decode<protocol::UpdateReport>(envelope);
      if (!report) return refuse_undecodable(device, report.error());
      if (auto problem = coordinator_.on_update(device, *report, envelope.payload(0), now)) {
        log_ << "refused the update of " << short_key(device) << ": " << *problem << "\n";
      }
      return;
    }
    case protocol::MessageType::advertise_keys: return handle_secure<protocol::AdvertiseKeys>(envelope, device, now);
    case protocol::MessageType::share_keys: return handle_secure<protocol::ShareKeys>(envelope, device, now);
    case protocol::MessageType::masked_input: return handle_secure<protocol::MaskedInput>(envelope, device, now);
    case protocol::MessageType::unmask_response: return handle_secure<protocol::UnmaskResponse>(envelope, device, now);
    case protocol::MessageType::evaluation_report: {
      auto report = protocol::decode<protocol::EvaluationReport>(envelope);
      if (!report) return refuse_undecodable(device, report.error());
      if (auto problem = coordinator_.on_evaluation(device, *report, now)) {
        log_ << "refused the evaluation of " << short_key(device) << ": " << *problem << "\n";
      }
      return;
    }
    case protocol::MessageType::health_report: {
      auto report = protocol::decode<protocol::HealthReport>(envelope);
      if (!report) return refuse_undecodable(device, report.error());
      return on_health_report(device, *report);
    }
    default:
      return refuse_undecodable(
          device, protocol::DecodeError{protocol::DecodeFault::unexpected_type, "type",
                                        "a device does not send " +
                                            std::string(*protocol::message_type_name(
                                                static_cast<std::uint16_t>(envelope.type())))});
  }
}

template <typename M>
void RoundService::handle_secure(const protocol::Envelope& envelope, const DeviceKey& device, Clock::time_point now) {
  auto message = protocol::decode<M>(envelope);
  if (!message) return refuse_undecodable(device, message.error());
  std::optional<std::string> problem;
  if constexpr (std::is_same_v<M, protocol::AdvertiseKeys>) problem = coordinator_.on_advertise(device, *message, now);
  if constexpr (std::is_same_v<M, protocol::ShareKeys>) problem = coordinator_.on_shares(device, *message, now);
  if constexpr (std::is_same_v<M, protocol::MaskedInput>) {
    problem = coordinator_.on_masked_input(device, *message, envelope.payload(0), now);
  }
  if constexpr (std::is_same_v<M, protocol::UnmaskResponse>) problem = coordinator_.on_unmask(device, *message, now);
  if (problem) log_ << "refused a secure-round message from " << short_key(device) << ": " << *problem << "\n";
}

void RoundService::on_health_report(const DeviceKey& device, const protocol::HealthReport& message) {
  const std::string hex = device.starts_with("ed25519:") ? device.substr(8) : device;
  const auto report = rollout_guard_.on_report(hex, message);
  nlohmann::json line{{"event", "health"},
                      {"device", hex},
                      {"model", report.model},
                      {"report", message.event},
                      {"active_version", report.active_version},
                      {"previous_version", report.previous_version},
                      {"attempted_version", report.attempted_version},
                      {"failed_step", report.failed_step},
                      {"smoke_test", message.smoke_test},
                      {"inference_errors", report.inference_errors},
                      {"accuracy", report.accuracy ? nlohmann::json(*report.accuracy) : nlohmann::json()},
                      {"accuracy_samples", report.accuracy_samples},
                      {"time", updater::format_utc(updater::now_utc())}};
  // A failed metrics line is reported at the next tick, with the rounds' lines.
  health_metrics_status_ = metrics_.write_line(line.dump());
  if (!report.failed_step.empty() || report.event == updater::HealthEvent::rollback) {
    log_ << "device " << short_key(device) << " reports on " << report.model << ": "
         << (report.failed_step.empty() ? "rolled back" : "install failed at " + report.failed_step)
         << ", running version " << report.active_version << "\n";
  }
}

void RoundService::check_rollouts(Clock::time_point now) {
  if (now < next_rollout_check_) return;
  next_rollout_check_ = now + std::chrono::seconds(1);
  for (const auto& halt : rollout_guard_.check(updater::now_utc())) {
    if (!halt.error.empty()) {
      log_ << "could not halt the rollout of " << halt.model << " version " << halt.version << ": " << halt.error
           << "\n";
      continue;
    }
    log_ << "halted the rollout of " << halt.model << " version " << halt.version << " in stage " << halt.stage + 1
         << ": " << halt.reason << "\n";
    nlohmann::json line{{"event", "rollout_halt"},     {"model", halt.model},   {"version", halt.version},
                        {"stage", halt.stage + 1},     {"reason", halt.reason},
                        {"time", updater::format_utc(updater::now_utc())}};
    health_metrics_status_ = metrics_.write_line(line.dump());
  }
}

Status RoundService::on_tick(Clock::time_point now) {
  if (auto status = std::exchange(health_metrics_status_, ok_status()); !status) return status;
  check_rollouts(now);
  coordinator_.on_tick(now);
  // The new model is checkpointed before anything carrying it goes out,
  // and only then may the next round start.
  if (auto status = record_finished(); !status) return status;
  coordinator_.on_tick(now);
  return ok_status();
}

zmq::message_t RoundService::model_frame() {
  const auto& global = coordinator_.global();
  auto encoded = encoded_model_.lock();
  if (!encoded || global.version() != encoded_version_) {
    encoded = std::make_shared<const std::vector<std::uint8_t>>(weights::encode_weights(global));
    encoded_model_ = encoded;
    encoded_version_ = global.version();
  }
  // Zero copy: each frame holds a reference to the one encoding until the transport is done with it.
  auto* holder = new std::shared_ptr<const std::vector<std::uint8_t>>(std::move(encoded));
  return zmq::message_t(
      const_cast<std::uint8_t*>((*holder)->data()), (*holder)->size(),
      [](void*, void* hint) { delete static_cast<std::shared_ptr<const std::vector<std::uint8_t>>*>(hint); }, holder);
}

std::vector<EncodedMessage> RoundService::take_outgoing() {
  std::vector<EncodedMessage> encoded;
  for (auto& outgoing : coordinator_.take_outgoing()) {
    auto frames = std::visit(
        [&](const auto& message) {
          std::vector<zmq::message_t> payloads;
          if (outgoing.with_model) payloads.push_back(model_frame());
          return protocol::encode(message, std::move(payloads));
        },
        outgoing.message);
    std::size_t bytes = 0;
    for (const auto& frame : frames) bytes += frame.size();
    encoded.push_back({std::move(outgoing.device), std::move(frames), bytes});
  }
  return encoded;
}

Status RoundService::record_finished() {
  for (const auto& record : coordinator_.take_finished()) {
    if (record.applied) {
      const auto start = Clock::now();
      const auto& optimizer = coordinator_.optimizer();
      const auto privacy = coordinator_.privacy_state();
      const CheckpointView checkpoint{coordinator_.global(), coordinator_.rounds_started(),
                                      strategy_name(optimizer.config().kind), optimizer.first_moment(),
                                      optimizer.second_moment(), privacy ? &*privacy : nullptr};
      if (auto status = write_checkpoint(config_.state_dir, checkpoint, *config_.env); !status) {
        return make_error(status.error().code, "round " + std::to_string(record.round) +
                                                   ": the new model could not be checkpointed, so it is not used: " +
                                                   status.error().message);
      }
      costs_.checkpoint_seconds = std::chrono::duration<double>(Clock::now() - start).count();
      log_ << "round " << record.round << ": applied " << record.reported << " of " << record.cohort
           << " updates (" << record.samples << " samples, device accuracy "
           << format_double("%.4f", record.mean_accuracy_after) << "), model version " << record.version_after
           << ", " << format_double("%.1f", record.seconds) << " s" << (record.secure ? ", secure" : "");
      if (record.delta > 0) {
        log_ << ", privacy spent epsilon " << format_double("%.3f", record.epsilon) << " at delta "
             << format_double("%g", record.delta) << " (clip norm " << format_double("%.4g", record.clip_norm) << ")";
      }
      log_ << "\n";
    } else {
      log_ << "round " << record.round << ": abandoned, nothing applied: " << record.abandon_reason << "\n";
    }
    const double start_s = std::chrono::duration<double>(record.started - origin_).count();
    if (auto status = metrics_.write_round(record, costs_, start_s); !status) return status;
    const auto costs = std::exchange(costs_, {});
    if (observer_) observer_(record, costs, coordinator_.global());
  }
  for (const auto& evaluation : coordinator_.take_evaluations()) {
    log_ << "evaluation of model version " << evaluation.model_version << ": " << evaluation.reported << " of "
         << evaluation.asked << " devices, " << evaluation.samples << " samples, loss "
         << format_double("%.4f", evaluation.loss) << ", accuracy " << format_double("%.4f", evaluation.accuracy)
         << "\n";
    if (auto status = metrics_.write_evaluation(evaluation); !status) return status;
  }
  return ok_status();
}

}  // namespace shoal::aggregator
