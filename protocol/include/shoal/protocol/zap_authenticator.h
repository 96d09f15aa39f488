// ZapAuthenticator: the ZeroMQ Authentication Protocol handler (ZMTP RFC 27)
// that admits only enrolled devices to a CurveZMQ server socket.
//
// It serves inproc://zeromq.zap.01 on one ZeroMQ context from its own thread.
// For each CURVE handshake it looks the client's public key up in the
// enrolment list and answers 200 (with the device's "ed25519:<hex>" key as
// the ZAP User-Id, readable on every message the device sends) or 400.
// Before answering it checks whether the list's source changed on disk and
// reloads it, so enrolling or revoking a device needs no restart; a reload
// that fails to parse keeps the previous list in force and is reported.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "shoal/base/result.h"
#include "shoal/protocol/enrolment.h"

namespace shoal::protocol {

class ZapAuthenticator {
 public:
  struct Counters {
    std::uint64_t admitted = 0;
    std::uint64_t refused = 0;
    std::uint64_t reload_failures = 0;
  };

  // Loads the list and starts serving ZAP on `context`; at most one per
  // context. Fails if the list cannot be loaded. `context` must outlive it.
  static Result<std::unique_ptr<ZapAuthenticator>> start(zmq::context_t& context,
                                                         std::filesystem::path enrolment_source);
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;
  ~ZapAuthenticator();

  // Re-reads the source now. On error the previous list stays in force.
  Status reload();
  // Reloads the list if its source changed on disk. Handshakes do this by
  // themselves; a server calls it now and then so that a revocation also
  // reaches devices already connected.
  void refresh() { reload_if_changed(); }
  // Goes up with every successful reload.
  std::uint64_t generation() const { return generation_.load(); }
  // Whether the device whose ZAP User-Id is `user_id` ("ed25519:<hex>") is
  // in the list now.
  bool is_enrolled(std::string_view user_id) const;

  std::size_t enrolled_count() const;
  // True if this authenticator answers handshakes for sockets of `context`.
  bool serves(const zmq::context_t& context) const { return &context == &context_; }
  Counters counters() const;
  // The last reload error, empty if the last reload succeeded.
  std::string last_reload_error() const;

 private:
  ZapAuthenticator(zmq::context_t& context, std::filesystem::path source, EnrolmentList list);
  void serve(std::promise<Status>& ready);
  void answer(zmq::socket_t& handler);
  void reload_if_changed();

  zmq::context_t& context_;
  const std::filesystem::path source_;
  const std::string stop_endpoint_;

  mutable std::mutex mutex_;  // guards list_, fingerprint_, last_reload_error_
  std::shared_ptr<const EnrolmentList> list_;
  std::string fingerprint_;
  std::string last_reload_error_;

  std::atomic<std::uint64_t> admitted_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> reload_failures_{0};
  std::atomic<std::uint64_t> generation_{0};

  // Made by the serving thread before start() returns; used only by the destructor.
  std::unique_ptr<zmq::socket_t> stop_sender_;
  std::thread thread_;
};

}  // namespace shoal::protocol
