#include "shoal/client/agent.h"

#include <zmq.h>

#include <algorithm>
#include <cstring>

#include "shoal/client/release_update.h"
#include "shoal/protocol/transport.h"
#include "shoal/weights/weights_file.h"

namespace shoal::client {
namespace {

constexpr std::chrono::milliseconds kPollInterval{50};

}  // namespace

Result<std::unique_ptr<Agent>> Agent::create(AgentOptions options, const crypto::IdentityKeyPair& identity,
                                             inference::Model model, Dataset train, Dataset held_out, LogSink log,
                                             AgentFaults faults) {
  if (!options.server) return make_error(ErrorCode::invalid_argument, "agent: the aggregator's public key is required");
  if (train.size() == 0) return make_error(ErrorCode::invalid_argument, "agent: no training data");
  if (faults.keep_updates && options.state_dir.empty()) {
    return make_error(ErrorCode::invalid_argument, "agent: keeping updates needs a state directory");
  }
  std::unique_ptr<Agent> agent(new Agent(std::move(options), identity, std::move(model), std::move(train),
                                         std::move(held_out), std::move(log), std::move(faults)));
  const auto& state_dir = agent->options_.state_dir;
  if (!state_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(state_dir, error);
    if (error) return make_error(ErrorCode::io, "cannot create state directory " + state_dir.string() + ": " + error.message());
    if (auto loaded = agent->holder_.load(agent->model_.layout())) agent->log_(*loaded);
    if (auto local = read_local_values(local_tensors_path(state_dir), agent->model_.layout())) {
      agent->local_ = std::move(local).value();
    } else {
      agent->log_("starting without local tensors: " + local.error().message);
    }
  }
  auto socket = protocol::connect_client_socket(agent->context_, identity, *agent->options_.server,
                                                agent->options_.endpoint, agent->limits_);
  if (!socket) return socket.error();
  // Handshake events tell a refused key (not enrolled) and a redial (the server restarted).
  const std::string monitor_endpoint = "inproc://agent-monitor";
  if (zmq_socket_monitor(socket->handle(), monitor_endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_DISCONNECTED) != 0) {
    return make_error(ErrorCode::io, std::string("cannot monitor the agent socket: ") + zmq_strerror(zmq_errno()));
  }
  agent->monitor_.emplace(agent->context_, zmq::socket_type::pair);
  agent->monitor_->connect(monitor_endpoint);
  agent->socket_ = std::move(socket).value();
  return agent;
}

Agent::Agent(AgentOptions options, const crypto::IdentityKeyPair& identity, inference::Model model, Dataset train,
             Dataset held_out, LogSink log, AgentFaults faults)
    : options_(std::move(options)),
      identity_(identity),
      model_(std::move(model)),
      train_(std::move(train)),
      held_out_(std::move(held_out)),
      log_([name = options_.name, log = std::move(log)](const std::string& line) { log(name + ": " + line); }),
      faults_(std::move(faults)),
      holder_(options_.state_dir.empty() ? std::filesystem::path() : model_path(options_.state_dir)) {
  SessionSettings settings;
  settings.server = options_.endpoint;
  settings.model = model_.name();
  settings.max_hello_backoff = options_.max_hello_backoff;
  settings.eligible = [rules = options_.eligibility] { return is_eligible(rules); };
  settings.trusted_peers = options_.trusted_peers ? &*options_.trusted_peers : nullptr;
  session_ = std::make_unique<DeviceSession>(std::move(settings), identity_, model_.layout(), holder_, randomness_,
                                             log_, faults_.session);
}

Agent::~Agent() {
  if (socket_) zmq_socket_monitor(socket_->handle(), nullptr, 0);
}

AgentCounters Agent::counters() const {
  const auto session = session_->counters();
  return {session.rounds_trained, session.rounds_diverged, session.evaluations, session.dropped_messages,
          refused_handshakes_};
}

void Agent::send_outgoing() {
  for (auto& frames : session_->take_outgoing()) {
    if (!protocol::send_to_server(*socket_, std::move(frames))) log_("could not queue a message for the aggregator");
  }
}

void Agent::run(const std::atomic<bool>& stop) {
  session_->start(Clock::now());
  while (!stop.load()) {
    if (auto received = protocol::receive_from_server(*socket_, limits_, kPollInterval)) {
      if (*received) {
        session_->on_message(**received, Clock::now());
      } else {
        session_->on_undecodable(received->error());
      }
      do_work();
      send_outgoing();
      // After the task's answer is queued: a durable write is off the round's path.
      if (auto kept = holder_.flush(); !kept) log_("could not keep the model on disk: " + kept.error().message);
      announce_global_model();
    }
    check_monitor(Clock::now());
    session_->on_tick(Clock::now());
    send_outgoing();
    send_health_reports();
  }
}

void Agent::queue_health_report(protocol::HealthReport report) {
  constexpr std::size_t kMaxQueuedHealthReports = 16;  // a disconnected device keeps the newest
  std::lock_guard lock(health_mutex_);
  if (health_reports_.size() == kMaxQueuedHealthReports) health_reports_.erase(health_reports_.begin());
  health_reports_.push_back(std::move(report));
}

void Agent::send_health_reports() {
  std::vector<protocol::HealthReport> reports;
  {
    std::lock_guard lock(health_mutex_);
    reports.swap(health_reports_);
  }
  for (auto& report : reports) {
    add_release_accuracy(report);
    if (protocol::send_to_server(*socket_, protocol::encode(report))) {
      ++health_reports_sent_;
    } else {
      log_("could not queue a health report for the aggregator");
    }
  }
}

void Agent::add_release_accuracy(protocol::HealthReport& report) {
  if (held_out_.size() == 0 || options_.state_dir.empty() || report.active_version == 0) return;
  const auto file = active_release_model(options_.state_dir);
  if (!file) return;
  auto release = weights::read_weights_file(*file);
  // Training and evaluation load the global model first, so the release may take the model's place here.
  if (!release || !model_.set_weights(*release)) return;
  auto evaluation = evaluate(model_, held_out_);
  if (!evaluation || !(evaluation->accuracy >= 0 && evaluation->accuracy <= 1)) return;
  report.accuracy = evaluation->accuracy;
  report.accuracy_samples = evaluation->samples;
}

void Agent::announce_global_model() {
  const auto* model = holder_.model();
  if (!options_.on_global_model || model == nullptr || model->version() == announced_version_) return;
  announced_version_ = model->version();
  options_.on_global_model(*model);
}

void Agent::check_monitor(Clock::time_point now) {
  zmq::message_t event, address;
  while (monitor_->recv(event, zmq::recv_flags::dontwait)) {
    if (event.more()) (void)monitor_->recv(address, zmq::recv_flags::none);
    if (event.size() < 6) continue;
    std::uint16_t id;
    std::uint32_t value;
    std::memcpy(&id, event.data(), sizeof id);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      ++refused_handshakes_;
      log_("the aggregator at " + options_.endpoint + " refused this device's key (ZAP status " +
           std::to_string(value) + "): it is not enrolled; enrol its .pub file with `shoal-aggregator enroll`");
    } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
      log_("handshake with " + options_.endpoint + " failed: is the aggregator's public key right?");
    } else if (id == ZMQ_EVENT_DISCONNECTED) {
      session_->on_disconnected(now);
    }
  }
}

void Agent::do_work() {
  for (const auto& request : session_->take_work()) {
    if (const auto* train = std::get_if<TrainRequest>(&request)) {
      const auto start = Clock::now();
      auto result = train_on_global(*train);
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      if (result && faults_.keep_updates) keep_update(train->round, result->update);
      session_->on_trained(train->round, std::move(result), seconds, Clock::now());
      if (faults_.zero_update) {
        log_("round " + std::to_string(train->round) + ": sent an all-zero update (debug.zero_update)");
      }
    } else {
      const auto& evaluate = std::get<EvaluateRequest>(request);
      session_->on_evaluated(evaluate, evaluate_global(), Clock::now());
    }
  }
}

Result<TrainingResult> Agent::train_on_global(const TrainRequest& request) {
  if (faults_.zero_update) {
    TrainingResult zeros;
    zeros.update.assign(model_.layout().value_count(), 0.0f);
    zeros.samples = train_.size();
    return zeros;
  }
  if (auto status = load_global(request.local_tensors); !status) return status.error();
  auto result = train(model_, train_, request.plan);
  if (result && !request.local_tensors.empty()) {
    local_ = take_local(request.local_tensors, model_.get_weights(0));
    if (!options_.state_dir.empty()) {
      if (auto kept = write_local_values(local_tensors_path(options_.state_dir), model_.layout(), local_); !kept) {
        log_("could not keep the local tensors: " + kept.error().message);
      }
    }
  }
  return result;
}

Result<Evaluation> Agent::evaluate_global() {
  if (auto status = load_global(local_.tensors); !status) return status.error();
  return evaluate(model_, held_out_.size() > 0 ? held_out_ : train_);
}

Status Agent::load_global(std::span<const std::uint64_t> local_tensors) {
  auto status = load_personalised(model_, *holder_.model(), local_, local_tensors);
  if (!status) return make_error(status.error().code, "cannot load the global model: " + status.error().message);
  return ok_status();
}

void Agent::keep_update(std::uint64_t round, const std::vector<float>& update) {
  const auto dir = options_.state_dir / "updates";
  const auto& global = *holder_.model();
  std::error_code ignored;
  std::filesystem::create_directories(dir, ignored);
  const auto base = dir / ("base-v" + std::to_string(global.version()) + ".weights");
  auto kept = weights::write_weights_file(base, global);
  if (kept) {
    auto values = weights::Weights::from_values(global.layout(), global.version(), update);
    kept = values ? weights::write_weights_file(dir / ("round-" + std::to_string(round) + ".update"), *values)
                  : Status(values.error());
  }
  if (!kept) log_("could not keep the update of round " + std::to_string(round) + ": " + kept.error().message);
}

}  // namespace shoal::client
