#include "shoal/aggregator/aggregator_server.h"

#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/release_messages.h"
#include "shoal/updater/repository_fetcher.h"

namespace shoal::aggregator {
namespace {

constexpr std::chrono::milliseconds kPollInterval{20};  // the deadline resolution
constexpr std::size_t kMaxMessagesPerTick = 256;       // ticks keep their pace under load
constexpr std::chrono::seconds kEnrolmentCheckInterval{1};  // how soon a revocation reaches a connected device

}  // namespace

Result<std::unique_ptr<AggregatorServer>> AggregatorServer::open(const AggregatorConfig& config, std::ostream& log) {
  if (auto status = config.validate(); !status) return status.error();
  auto key = crypto::load_identity_key(config.server_key, crypto::KeyRole::server);
  if (!key) return key.error();
  auto service = RoundService::open(config, log, Clock::now());
  if (!service) return service.error();
  std::unique_ptr<AggregatorServer> server(new AggregatorServer(config, log, std::move(service).value()));

  auto authenticator = protocol::ZapAuthenticator::start(server->context_, config.enrolment);
  if (!authenticator) return authenticator.error();
  server->authenticator_ = std::move(authenticator).value();
  auto socket = protocol::bind_server_socket(server->context_, *server->authenticator_, key->keys, config.bind,
                                             server->limits_);
  if (!socket) return socket.error();
  server->socket_ = std::move(socket).value();
  auto watch = protocol::MemoryWatch::start(server->context_, *server->socket_, config.memory);
  if (!watch) return watch.error();
  server->memory_watch_ = std::move(watch).value();
  log << "listening on " << server->endpoint() << " as "
      << crypto::format_ed25519_public(key->keys.public_identity().ed25519()) << ", "
      << server->authenticator_->enrolled_count() << " devices enrolled\n";
  return server;
}

AggregatorServer::AggregatorServer(const AggregatorConfig& config, std::ostream& log,
                                   std::unique_ptr<RoundService> service)
    : config_(config), log_(log), service_(std::move(service)) {}

AggregatorServer::~AggregatorServer() = default;

std::string AggregatorServer::endpoint() { return protocol::last_endpoint(*socket_); }

Status AggregatorServer::run(const std::atomic<bool>& stop) {
  while (!stop.load() && !service_->done()) {
    auto message = protocol::receive_from_peer(*socket_, limits_, kPollInterval);
    for (std::size_t n = 0; message && n < kMaxMessagesPerTick; ++n) {
      handle(*message, Clock::now());
      message = protocol::receive_from_peer(*socket_, limits_, std::chrono::milliseconds(0));
    }
    log_connection_events();
    check_enrolment(Clock::now());
    if (auto status = service_->on_tick(Clock::now()); !status) return status;
    send_outgoing();
  }
  log_connection_events();  // what the watch saw last
  service_->log_done();
  return ok_status();
}

void AggregatorServer::check_enrolment(Clock::time_point now) {
  if (now < next_enrolment_check_) return;
  next_enrolment_check_ = now + kEnrolmentCheckInterval;
  authenticator_->refresh();
  if (authenticator_->generation() == enrolment_generation_) return;
  enrolment_generation_ = authenticator_->generation();
  enrolled_.clear();
  for (const auto& [device, route] : routes_) {
    if (enrolled(device)) {
      revoked_.erase(device);  // enrolled again
    } else if (revoked_.insert(device).second) {
      log_ << "device " << short_key(device) << " is no longer enrolled: refusing its messages\n";
      service_->on_revoked(device, now);
    }
  }
}

bool AggregatorServer::enrolled(const DeviceKey& device) {
  const auto [entry, inserted] = enrolled_.try_emplace(device, false);
  if (inserted) entry->second = authenticator_->is_enrolled(device);
  return entry->second;
}

void AggregatorServer::log_connection_events() {
  for (const auto& event : memory_watch_->take_events()) {
    const auto device = connection_devices_.find(event.connection);
    const std::string who = event.address + (device == connection_devices_.end() ? "" : " (device " + short_key(device->second) + ")");
    if (event.kind == protocol::WatchEvent::Kind::cut) {
      log_ << "cut the connection from " << who << ": " << event.why << "\n";
      continue;
    }
    log_ << "connection from " << who << " closed";
    if (event.held > 0) log_ << ", " << event.held << " bytes of it never made a whole message";
    log_ << " (the device left, was cut, or sent a frame over " << limits_.max_frame_bytes() << " bytes)\n";
    if (device != connection_devices_.end()) connection_devices_.erase(device);
  }
}

void AggregatorServer::handle(protocol::FromPeer& message, Clock::time_point now) {
  memory_watch_->delivered(message.connection, message.wire_bytes);
  if (message.connection >= 0) connection_devices_[message.connection] = message.user_id;
  const DeviceKey& device = message.user_id;
  // Revocation holds on every connection, whatever it has sent: one opened
  // before the device was revoked still carries its key.
  const bool is_enrolled = enrolled(device);
  // Release fetches come on a connection of their own: it must not become the device's round route.
  if (message.message && message.message->type() == protocol::MessageType::fetch_file) {
    return serve_release_file(message, is_enrolled);
  }
  // A device keeps its routing id until it reconnects; copy it only then.
  auto& route = routes_[device];
  if (route != message.routing_id) route.copy(message.routing_id);
  if (!is_enrolled) {
    if (revoked_.insert(device).second) {
      log_ << "device " << short_key(device) << " is no longer enrolled: refusing its messages\n";
      service_->on_revoked(device, now);
    }
    return service_->refuse(device, "not enrolled", "this device's enrolment was revoked; it takes no further part");
  }
  service_->on_message(device, message.message, message.bytes, now);
}

void AggregatorServer::serve_release_file(const protocol::FromPeer& message, bool enrolled) {
  auto fetch = protocol::decode<protocol::FetchFile>(*message.message);
  protocol::FileChunk chunk{fetch ? fetch->request : 0, "refused", "", fetch ? fetch->offset : 0, 0};
  std::vector<zmq::message_t> payloads;
  if (!fetch) {
    chunk.detail = fetch.error().describe();
  } else if (config_.release_repository.empty()) {
    chunk.detail = "this aggregator serves no release repository";
  } else if (!enrolled) {
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

void AggregatorServer::send_outgoing() {
  for (auto& outgoing : service_->take_outgoing()) {
    const auto route = routes_.find(outgoing.device);
    if (route == routes_.end()) continue;
    if (protocol::send_to_peer(*socket_, route->second, std::move(outgoing.frames))) {
      service_->count_sent(outgoing.bytes);
    } else {
      log_ << "could not send to " << short_key(outgoing.device) << ": disconnected or its queue is full\n";
    }
  }
}

}  // namespace shoal::aggregator
