#include "shoal/aggregator/aggregator_server.h"

#include <cstdio>

#include "shoal/aggregator/checkpoint.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/protocol/secagg_messages.h"
#include "shoal/updater/repository_fetcher.h"
#include "shoal/weights/weights_file.h"

namespace shoal::aggregator {
namespace {

constexpr std::chrono::milliseconds kPollInterval{20};  // the deadline resolution
constexpr std::size_t kMaxMessagesPerTick = 256;       // ticks keep their pace under load
constexpr std::chrono::seconds kEnrolmentCheckInterval{1};  // how soon a revocation reaches a connected device

// "ed25519:1a2b3c4d5e6f": enough of a device key for a log line.
std::string short_key(const DeviceKey& device) { return device.substr(0, 20); }

std::string format_double(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

// Privacy spent before a restart counts against the budget after it.
Status resume_privacy(RoundCoordinator& coordinator, const std::optional<PrivacyState>& saved,
                       std::uint64_t version, const AggregatorConfig& config, std::ostream& log) {
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
Result<RoundCoordinator> restore_coordinator(const AggregatorConfig& config, std::ostream& log) {
  auto checkpoint = read_checkpoint(config.state_dir);
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
    auto optimizer = ServerOptimizer::create(config.strategy, saved.global.values().size());
    if (!optimizer) return optimizer.error();
    if (auto status = optimizer->restore(std::move(saved.first_moment), std::move(saved.second_moment)); !status) {
      return make_error(ErrorCode::corrupt, config.state_dir.string() + ": " + status.error().message);
    }
    log << "resuming from checkpoint in " << config.state_dir.string() << ": model version " << saved.global.version()
        << ", " << saved.rounds_started << " rounds started\n";
    const auto version = saved.global.version();
    auto coordinator = RoundCoordinator::create(config.round, std::move(saved.global), std::move(optimizer).value(),
                                                saved.rounds_started);
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
  auto optimizer = ServerOptimizer::create(config.strategy, initial->values().size());
  if (!optimizer) return optimizer.error();
  log << "starting from " << config.initial_weights.string() << ": model version " << initial->version() << ", "
      << initial->layout().parameter_count() << " parameters\n";
  return RoundCoordinator::create(config.round, std::move(initial).value(), std::move(optimizer).value(), 0);
}

}  // namespace

Result<std::unique_ptr<AggregatorServer>> AggregatorServer::open(const AggregatorConfig& config, std::ostream& log) {
  if (auto status = config.validate(); !status) return status.error();
  auto key = crypto::load_identity_key(config.server_key, crypto::KeyRole::server);
  if (!key) return key.error();
  auto coordinator = restore_coordinator(config, log);
  if (!coordinator) return coordinator.error();
  auto metrics = MetricsLog::open(config.metrics_path());
  if (!metrics) return metrics.error();
  std::unique_ptr<AggregatorServer> server(
      new AggregatorServer(config, log, std::move(coordinator).value(), std::move(metrics).value()));

  auto authenticator = protocol::ZapAuthenticator::start(server->context_, config.enrolment);
  if (!authenticator) return authenticator.error();
  server->authenticator_ = std::move(authenticator).value();
  auto socket = protocol::bind_server_socket(server->context_, *server->authenticator_, key->keys, config.bind,
                                             server->limits_);
  if (!socket) return socket.error();
  server->socket_ = std::move(socket).value();
  log << "listening on " << server->endpoint() << " as "
      << crypto::format_ed25519_public(key->keys.public_identity().ed25519()) << ", "
      << server->authenticator_->enrolled_count() << " devices enrolled\n";
  return server;
}

AggregatorServer::AggregatorServer(const AggregatorConfig& config, std::ostream& log, RoundCoordinator coordinator,
                                   MetricsLog metrics)
    : config_(config), log_(log), coordinator_(std::move(coordinator)), metrics_(std::move(metrics)) {}

AggregatorServer::~AggregatorServer() = default;

std::string AggregatorServer::endpoint() { return protocol::last_endpoint(*socket_); }

Status AggregatorServer::run(const std::atomic<bool>& stop) {
  auto done = [&] {
    const auto final_version = config_.round.final_version;
    const bool reached = final_version > 0 && coordinator_.global().version() >= final_version;
    const bool stopped = !coordinator_.stopped_reason().empty() && !coordinator_.round_open();
    return (reached || stopped) && !coordinator_.evaluation_open();
  };
  while (!stop.load() && !done()) {
    auto message = protocol::receive_from_peer(*socket_, limits_, kPollInterval);
    for (std::size_t n = 0; message && n < kMaxMessagesPerTick; ++n) {
      handle(*message, Clock::now());
      message = protocol::receive_from_peer(*socket_, limits_, std::chrono::milliseconds(0));
    }
    check_enrolment(Clock::now());
    coordinator_.on_tick(Clock::now());
    // The new model is checkpointed before anything carrying it goes out,
    // and only then may the next round start.
    if (auto status = record_finished(); !status) return status;
    coordinator_.on_tick(Clock::now());
    send_outgoing();
  }
  if (done() && !coordinator_.stopped_reason().empty()) {
    log_ << "no further rounds: " << coordinator_.stopped_reason() << "; stopping at model version "
         << coordinator_.global().version() << "\n";
  } else if (done()) {
    log_ << "model version " << coordinator_.global().version() << " reached: stopping\n";
  }
  return ok_status();
}

void AggregatorServer::check_enrolment(Clock::time_point now) {
  if (now < next_enrolment_check_) return;
  next_enrolment_check_ = now + kEnrolmentCheckInterval;
  authenticator_->refresh();
  if (authenticator_->generation() == enrolment_generation_) return;
  enrolment_generation_ = authenticator_->generation();
  for (const auto& [device, route] : routes_) {
    if (authenticator_->is_enrolled(device)) {
      revoked_.erase(device);  // enrolled again
    } else if (revoked_.insert(device).second) {
      log_ << "device " << short_key(device) << " is no longer enrolled: refusing its messages\n";
      coordinator_.on_revoked(device, now);
    }
  }
}

void AggregatorServer::handle(protocol::FromPeer& message, Clock::time_point now) {
  // Release fetches come on a connection of their own: it must not become the device's round route.
  if (message.message && message.message->type() == protocol::MessageType::fetch_file) {
    return serve_release_file(message);
  }
  costs_.bytes_in += message.bytes;
  const DeviceKey& device = message.user_id;
  // A device keeps its routing id until it reconnects; copy it only then.
  auto& route = routes_[device];
  if (route != message.routing_id) route.copy(message.routing_id);
  if (revoked_.contains(device)) {
    // Its connection predates the revocation; a new one would fail the handshake.
    return coordinator_.refuse_message(device, "not enrolled",
                                       "this device's enrolment was revoked; it takes no further part");
  }
  auto refuse = [&](const protocol::DecodeError& error) {
    log_ << "dropped a message from " << short_key(device) << ": " << error.describe() << "\n";
    coordinator_.refuse_message(device, to_string(error.fault), error.describe());
  };
  if (!message.message) return refuse(message.message.error());
  const auto& envelope = *message.message;
  switch (envelope.type()) {
    case protocol::MessageType::hello: {
      auto hello = protocol::decode<protocol::Hello>(envelope);
      if (!hello) return refuse(hello.error());
      log_ << "device " << short_key(device) << " connected (" << hello->agent_version << ", model version "
           << hello->model_version << (hello->eligible ? ", eligible" : ", not eligible") << ")\n";
      return coordinator_.on_hello(device, *hello, now);
    }
    case protocol::MessageType::heartbeat: {
      auto heartbeat = protocol::decode<protocol::Heartbeat>(envelope);
      if (!heartbeat) return refuse(heartbeat.error());
      return coordinator_.on_heartbeat(device, now);
    }
    case protocol::MessageType::update_report: {
      auto report = protocol::decode<protocol::UpdateReport>(envelope);
      if (!report) return refuse(report.error());
      if (auto problem = coordinator_.on_update(device, *report, envelope.payload(0), now)) {
        log_ << "refused the update of " << short_key(device) << ": " << *problem << "\n";
      }
      return;
    }
    case protocol::MessageType::advertise_keys: return handle_secure<protocol::AdvertiseKeys>(envelope, device, now, refuse);
    case protocol::MessageType::share_keys: return handle_secure<protocol::ShareKeys>(envelope, device, now, refuse);
    case protocol::MessageType::masked_input: return handle_secure<protocol::MaskedInput>(envelope, device, now, refuse);
    case protocol::MessageType::unmask_response:
      return handle_secure<protocol::UnmaskResponse>(envelope, device, now, refuse);
    case protocol::MessageType::evaluation_report: {
      auto report = protocol::decode<protocol::EvaluationReport>(envelope);
      if (!report) return refuse(report.error());
      if (auto problem = coordinator_.on_evaluation(device, *report, now)) {
        log_ << "refused the evaluation of " << short_key(device) << ": " << *problem << "\n";
      }
      return;
    }
    default:
      return refuse(protocol::DecodeError{protocol::DecodeFault::unexpected_type, "type",
                                          "a device does not send " +
                                              std::string(*protocol::message_type_name(
                                                  static_cast<std::uint16_t>(envelope.type())))});
  }
}

template <typename M, typename Refuse>
void AggregatorServer::handle_secure(const protocol::Envelope& envelope, const DeviceKey& device, Clock::time_point now,
                                     Refuse& refuse) {
  auto message = protocol::decode<M>(envelope);
  if (!message) return refuse(message.error());
  std::optional<std::string> problem;
  if constexpr (std::is_same_v<M, protocol::AdvertiseKeys>) problem = coordinator_.on_advertise(device, *message, now);
  if constexpr (std::is_same_v<M, protocol::ShareKeys>) problem = coordinator_.on_shares(device, *message, now);
  if constexpr (std::is_same_v<M, protocol::MaskedInput>) {
    problem = coordinator_.on_masked_input(device, *message, envelope.payload(0), now);
  }
  if constexpr (std::is_same_v<M, protocol::UnmaskResponse>) problem = coordinator_.on_unmask(device, *message, now);
  if (problem) log_ << "refused a secure-round message from " << short_key(device) << ": " << *problem << "\n";
}

void AggregatorServer::serve_release_file(const protocol::FromPeer& message) {
  auto fetch = protocol::decode<protocol::FetchFile>(*message.message);
  protocol::FileChunk chunk{fetch ? fetch->request : 0, "refused", "", fetch ? fetch->offset : 0, 0};
  std::vector<zmq::message_t> payloads;
  if (!fetch) {
    chunk.detail = fetch.error().describe();
  } else if (config_.release_repository.empty()) {
    chunk.detail = "this aggregator serves no release repository";
  } else if (revoked_.contains(message.user_id)) {
    chunk.detail = "this device's enrolment was revoked";
  } else if (auto range = updater::read_repository_range(config_.release_repository, fetch->path, fetch->offset,
                                                          fetch->max_bytes);
             !range) {
    chunk.status = range.error().code == ErrorCode::not_found ? "not_found" : "refused";
    chunk.detail = range.error().message;
  } else {
    chunk.status = "ok";
    chunk.total_size = range->total_size;
    payloads.emplace_back(range->bytes.data(), range->bytes.size());
  }
  if (chunk.status == "refused") {
    log_ << "refused a release fetch by " << short_key(message.user_id) << ": " << chunk.detail << "\n";
  }
  protocol::send_to_peer(*socket_, message.routing_id, protocol::encode(chunk, std::move(payloads)));
}

zmq::message_t AggregatorServer::model_frame() {
  const auto& global = coordinator_.global();
  auto encoded = encoded_model_.lock();
  if (!encoded || global.version() != encoded_version_) {
    encoded = std::make_shared<const std::vector<std::uint8_t>>(weights::encode_weights(global));
    encoded_model_ = encoded;
    encoded_version_ = global.version();
  }
  batch_model_ = encoded;
  // Zero copy: each frame holds a reference to the one encoding until libzmq has sent it.
  auto* holder = new std::shared_ptr<const std::vector<std::uint8_t>>(std::move(encoded));
  return zmq::message_t(
      const_cast<std::uint8_t*>((*holder)->data()), (*holder)->size(),
      [](void*, void* hint) { delete static_cast<std::shared_ptr<const std::vector<std::uint8_t>>*>(hint); }, holder);
}

std::vector<zmq::message_t> AggregatorServer::encode(const Outgoing& outgoing) {
  return std::visit(
      [&](const auto& message) {
        std::vector<zmq::message_t> payloads;
        if (outgoing.with_model) payloads.push_back(model_frame());
        return protocol::encode(message, std::move(payloads));
      },
      outgoing.message);
}

void AggregatorServer::send_outgoing() {
  for (auto& outgoing : coordinator_.take_outgoing()) {
    const auto route = routes_.find(outgoing.device);
    if (route == routes_.end()) continue;
    auto frames = encode(outgoing);
    std::size_t bytes = 0;
    for (const auto& frame : frames) bytes += frame.size();
    if (protocol::send_to_peer(*socket_, route->second, std::move(frames))) {
      costs_.bytes_out += bytes;
    } else {
      log_ << "could not send to " << short_key(outgoing.device) << ": disconnected or its queue is full\n";
    }
  }
  batch_model_.reset();  // from here on only frames still being sent hold the encoding
}

Status AggregatorServer::record_finished() {
  for (const auto& record : coordinator_.take_finished()) {
    if (record.applied) {
      const auto start = Clock::now();
      const auto& optimizer = coordinator_.optimizer();
      const auto privacy = coordinator_.privacy_state();
      const CheckpointView checkpoint{coordinator_.global(), coordinator_.rounds_started(),
                                      strategy_name(optimizer.config().kind), optimizer.first_moment(),
                                      optimizer.second_moment(), privacy ? &*privacy : nullptr};
      if (auto status = write_checkpoint(config_.state_dir, checkpoint); !status) return status;
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
    if (auto status = metrics_.write_round(record, costs_); !status) return status;
    costs_ = {};
    if (observer_) observer_(record, coordinator_.global());
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
