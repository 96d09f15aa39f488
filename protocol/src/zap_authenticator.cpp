#include "shoal/protocol/zap_authenticator.h"

#include <zmq_addon.hpp>

#include <cstring>
#include <iostream>

#include "shoal/crypto/key_file.h"

namespace shoal::protocol {
namespace {

// ZMTP RFC 27: the fixed endpoint libzmq sends handshakes to.
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

std::string frame_text(const zmq::message_t& frame) { return std::string(frame.data<char>(), frame.size()); }

}  // namespace

Result<std::unique_ptr<ZapAuthenticator>> ZapAuthenticator::start(zmq::context_t& context,
                                                                  std::filesystem::path enrolment_source) {
  const std::string fingerprint = enrolment_source_fingerprint(enrolment_source);
  auto list = EnrolmentList::load(enrolment_source);
  if (!list) return list.error();
  std::unique_ptr<ZapAuthenticator> authenticator(
      new ZapAuthenticator(context, std::move(enrolment_source), std::move(list).value()));
  authenticator->fingerprint_ = fingerprint;

  // The handler socket must be bound before any server socket accepts a
  // handshake, so start() waits until the thread has bound it.
  std::promise<Status> ready;
  auto bound = ready.get_future();
  authenticator->thread_ = std::thread([raw = authenticator.get(), &ready] { raw->serve(ready); });
  Status status = bound.get();
  if (!status) {
    authenticator->thread_.join();
    return status.error();
  }
  return authenticator;
}

ZapAuthenticator::ZapAuthenticator(zmq::context_t& context, std::filesystem::path source, EnrolmentList list)
    : context_(context),
      source_(std::move(source)),
      stop_endpoint_("inproc://shoal.zap.stop." + std::to_string(reinterpret_cast<std::uintptr_t>(this))),
      list_(std::make_shared<const EnrolmentList>(std::move(list))) {}

ZapAuthenticator::~ZapAuthenticator() {
  if (stop_sender_) {
    try {
      // Never block: if the handler already stopped (context shut down) nobody reads this.
      (void)stop_sender_->send(zmq::message_t(), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }
  if (thread_.joinable()) thread_.join();
}

void ZapAuthenticator::serve(std::promise<Status>& ready) {
  zmq::socket_t handler(context_, zmq::socket_type::rep);
  zmq::socket_t stop_receiver(context_, zmq::socket_type::pair);
  try {
    handler.set(zmq::sockopt::linger, 0);
    handler.bind(kZapEndpoint);
    stop_receiver.bind(stop_endpoint_);
    stop_sender_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pair);
    stop_sender_->connect(stop_endpoint_);
  } catch (const zmq::error_t& e) {
    stop_sender_.reset();
    ready.set_value(make_error(ErrorCode::invalid_argument,
                               std::string("cannot serve ZAP on this context (is another authenticator running?): ") +
                                   e.what()));
    return;
  }
  ready.set_value(ok_status());

  std::vector<zmq::pollitem_t> items = {{handler.handle(), 0, ZMQ_POLLIN, 0},
                                        {stop_receiver.handle(), 0, ZMQ_POLLIN, 0}};
  for (;;) {
    try {
      zmq::poll(items);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return;  // the context is shutting down
    }
    if (items[1].revents & ZMQ_POLLIN) return;
    if (items[0].revents & ZMQ_POLLIN) answer(handler);
  }
}

void ZapAuthenticator::answer(zmq::socket_t& handler) {
  std::vector<zmq::message_t> request;
  if (!zmq::recv_multipart(handler, std::back_inserter(request))) return;
  // Request: version, request id, domain, address, routing id, mechanism, credentials...
  std::string status_code = "400";
  std::string status_text = "malformed ZAP request";
  std::string user_id;
  if (request.size() >= 6 && frame_text(request[0]) == "1.0") {
    if (frame_text(request[5]) != "CURVE" || request.size() != 7 ||
        request[6].size() != crypto::kCurve25519KeyBytes) {
      status_text = "only CURVE clients are admitted";
    } else {
      reload_if_changed();
      crypto::Curve25519PublicKey key{};
      std::memcpy(key.data(), request[6].data(), key.size());
      std::shared_ptr<const EnrolmentList> list;
      {
        std::lock_guard lock(mutex_);
        list = list_;
      }
      if (const EnrolledDevice* device = list->find(key)) {
        status_code = "200";
        status_text = "OK";
        user_id = crypto::format_ed25519_public(device->identity.ed25519());
      } else {
        status_text = "key not enrolled";
      }
    }
  }
  (status_code == "200" ? admitted_ : refused_).fetch_add(1);

  std::vector<zmq::message_t> reply;
  reply.emplace_back(std::string_view("1.0"));
  reply.push_back(request.size() >= 2 ? std::move(request[1]) : zmq::message_t());
  reply.emplace_back(std::string_view(status_code));
  reply.emplace_back(std::string_view(status_text));
  reply.emplace_back(std::string_view(user_id));
  reply.emplace_back();  // no metadata
  zmq::send_multipart(handler, reply);
}

void ZapAuthenticator::reload_if_changed() {
  {
    std::lock_guard lock(mutex_);
    if (enrolment_source_fingerprint(source_) == fingerprint_) return;
  }
  (void)reload();
}

Status ZapAuthenticator::reload() {
  const std::string fingerprint = enrolment_source_fingerprint(source_);
  auto list = EnrolmentList::load(source_);
  std::lock_guard lock(mutex_);
  fingerprint_ = fingerprint;  // a broken source is reported once, not at every handshake
  if (!list) {
    reload_failures_.fetch_add(1);
    last_reload_error_ = list.error().describe();
    std::cerr << "shoal: keeping the previous enrolment list (" << list_->size()
              << " devices); reload failed: " << last_reload_error_ << "\n";
    return list.error();
  }
  list_ = std::make_shared<const EnrolmentList>(std::move(list).value());
  last_reload_error_.clear();
  generation_.fetch_add(1);
  return ok_status();
}

bool ZapAuthenticator::is_enrolled(std::string_view user_id) const {
  auto identity = crypto::parse_ed25519_public(user_id, "ZAP User-Id");
  if (!identity) return false;
  std::lock_guard lock(mutex_);
  return list_->find(identity->curve25519()) != nullptr;
}

std::size_t ZapAuthenticator::enrolled_count() const {
  std::lock_guard lock(mutex_);
  return list_->size();
}

ZapAuthenticator::Counters ZapAuthenticator::counters() const {
  return {admitted_.load(), refused_.load(), reload_failures_.load()};
}

std::string ZapAuthenticator::last_reload_error() const {
  std::lock_guard lock(mutex_);
  return last_reload_error_;
}

}  // namespace shoal::protocol
