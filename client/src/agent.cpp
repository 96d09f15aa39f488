#include "shoal/client/agent.h"

#include <sodium.h>
#include <zmq.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <span>

#include "shoal/client/trainer.h"
#include "shoal/client/update_privatizer.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/messages.h"
#include "shoal/protocol/transport.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/weights/modular_quantizer.h"
#include "shoal/weights/weights_file.h"

namespace shoal::client {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kAgentVersion = "shoal-agent 0.1.0";
constexpr std::chrono::milliseconds kPollInterval{50};

std::string fmt(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", value);
  return text;
}

template <typename T>
zmq::message_t frame_of(std::span<const T> values) {
  return zmq::message_t(values.data(), values.size_bytes());
}

// Training that diverged leaves NaN or infinite values: sent, they would
// poison a plain mean, and they cannot be quantised for a secure one.
std::optional<std::string> non_finite(const TrainingResult& result) {
  if (!std::isfinite(result.after.loss)) return "the loss after training is " + fmt(result.after.loss);
  const auto bad = std::find_if(result.update.begin(), result.update.end(), [](float v) { return !std::isfinite(v); });
  if (bad == result.update.end()) return std::nullopt;
  return "update value " + std::to_string(bad - result.update.begin()) + " is " + fmt(*bad);
}

std::uint64_t fresh_seed() {
  std::uint64_t seed;
  randombytes_buf(&seed, sizeof seed);
  return seed;
}

}  // namespace

Result<TrainingPlan> training_plan_from_wire(const protocol::WirePlan& wire) {
  if (auto problem = wire.check()) return make_error(ErrorCode::invalid_argument, "train task plan: " + problem->describe());
  TrainingPlan plan;
  plan.epochs = static_cast<int>(wire.epochs);
  plan.batch_size = wire.batch_size;
  plan.learning_rate = static_cast<float>(wire.learning_rate);
  plan.momentum = static_cast<float>(wire.momentum);
  plan.weight_decay = static_cast<float>(wire.weight_decay);
  plan.proximal_mu = static_cast<float>(wire.proximal_mu);
  plan.seed = wire.seed;
  if (auto status = plan.validate(); !status) return status.error();
  return plan;
}

Result<std::unique_ptr<Agent>> Agent::create(AgentOptions options, const crypto::IdentityKeyPair& identity,
                                             inference::Model model, Dataset train, Dataset held_out, LogSink log) {
  if (!options.server) return make_error(ErrorCode::invalid_argument, "agent: the aggregator's public key is required");
  if (train.size() == 0) return make_error(ErrorCode::invalid_argument, "agent: no training data");
  std::unique_ptr<Agent> agent(new Agent(std::move(options), identity, std::move(model), std::move(train),
                                         std::move(held_out), std::move(log)));
  const auto& state_dir = agent->options_.state_dir;
  if (!state_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(state_dir, error);
    if (error) return make_error(ErrorCode::io, "cannot create state directory " + state_dir.string() + ": " + error.message());
    if (std::filesystem::exists(model_path(state_dir))) {
      auto saved = weights::read_weights_file(model_path(state_dir));
      if (saved && saved->layout().hash() == agent->model_.layout().hash()) {
        agent->global_ = std::move(saved).value();
        agent->global_hash_.reset();
        agent->log_("holding model version " + std::to_string(agent->global_->version()) + " from " +
                    model_path(state_dir).string());
      } else {
        agent->log_("ignoring " + model_path(state_dir).string() + ": " +
                    (saved ? "its layout is not this model's" : saved.error().message) +
                    "; the aggregator will send its model");
      }
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
             Dataset held_out, LogSink log)
    : options_(std::move(options)),
      identity_(identity),
      model_(std::move(model)),
      train_(std::move(train)),
      held_out_(std::move(held_out)),
      log_([name = options_.name, log = std::move(log)](const std::string& line) { log(name + ": " + line); }) {}

Agent::~Agent() {
  if (socket_) zmq_socket_monitor(socket_->handle(), nullptr, 0);
}

void Agent::send(std::vector<zmq::message_t> frames) {
  if (!protocol::send_to_server(*socket_, std::move(frames))) log_("could not queue a message for the aggregator");
}

void Agent::say_hello() {
  eligible_ = is_eligible(options_.eligibility);
  send(protocol::encode(protocol::Hello{kAgentVersion, model_version(), eligible_}));
}

void Agent::drop(const std::string& why) {
  ++counters_.dropped_messages;
  log_("dropped a message from the aggregator: " + why);
}

void Agent::run(const std::atomic<bool>& stop) {
  next_hello_ = Clock::now();
  while (!stop.load()) {
    if (auto received = protocol::receive_from_server(*socket_, limits_, kPollInterval)) {
      if (*received) {
        handle(**received);
        keep_model_on_disk();  // after the task's answer is queued: a durable write is off the round's path
      } else {
        drop(received->error().describe());
      }
    }
    check_monitor();
    const auto now = Clock::now();
    if (!welcomed_ && now >= next_hello_) {
      if (hello_backoff_ > std::chrono::milliseconds(1'000)) {  // not the first hello
        log_("no welcome from " + options_.endpoint + " yet; saying hello again");
      }
      say_hello();
      next_hello_ = now + hello_backoff_;
      hello_backoff_ = std::min(hello_backoff_ * 2, options_.max_hello_backoff);
    }
    if (welcomed_ && now >= next_heartbeat_) {
      // A change of eligibility is announced with a fresh hello.
      if (is_eligible(options_.eligibility) != eligible_) {
        say_hello();
      } else {
        send(protocol::encode(protocol::Heartbeat{++heartbeat_sequence_}));
      }
      next_heartbeat_ = now + heartbeat_interval_;
    }
  }
}

void Agent::check_monitor() {
  zmq::message_t event, address;
  while (monitor_->recv(event, zmq::recv_flags::dontwait)) {
    if (event.more()) (void)monitor_->recv(address, zmq::recv_flags::none);
    if (event.size() < 6) continue;
    std::uint16_t id;
    std::uint32_t value;
    std::memcpy(&id, event.data(), sizeof id);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      ++counters_.refused_handshakes;
      log_("the aggregator at " + options_.endpoint + " refused this device's key (ZAP status " +
           std::to_string(value) + "): it is not enrolled; enrol its .pub file with `shoal-aggregator enroll`");
    } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
      log_("handshake with " + options_.endpoint + " failed: is the aggregator's public key right?");
    } else if (id == ZMQ_EVENT_DISCONNECTED && welcomed_) {
      log_("lost the connection to " + options_.endpoint + "; redialling");
      welcomed_ = false;
      hello_backoff_ = std::chrono::milliseconds(1'000);
      next_hello_ = Clock::now();  // queued until the new handshake completes
    }
  }
}

void Agent::handle(protocol::Envelope& envelope) {
  switch (envelope.type()) {
    case protocol::MessageType::welcome: {
      auto welcome = protocol::decode<protocol::Welcome>(envelope);
      if (!welcome) return drop(welcome.error().describe());
      if (!welcomed_) {
        log_("welcomed by " + welcome->server_version + ", global model version " +
             std::to_string(welcome->model_version));
      }
      welcomed_ = true;
      hello_backoff_ = std::chrono::milliseconds(1'000);
      heartbeat_interval_ = std::chrono::milliseconds(std::max<std::uint64_t>(welcome->heartbeat_interval_ms, 100));
      next_heartbeat_ = Clock::now() + heartbeat_interval_;
      return;
    }
    case protocol::MessageType::train_task: {
      auto task = protocol::decode<protocol::TrainTask>(envelope);
      if (!task) return drop(task.error().describe());
      if (envelope.payload_count() == 1 && !adopt_model(envelope.payload(0), task->model_version, "train task")) return;
      return train_round(*task);
    }
    case protocol::MessageType::evaluate_task: {
      auto task = protocol::decode<protocol::EvaluateTask>(envelope);
      if (!task) return drop(task.error().describe());
      if (envelope.payload_count() == 1 && !adopt_model(envelope.payload(0), task->model_version, "evaluate task")) {
        return;
      }
      return evaluate_round(*task);
    }
    case protocol::MessageType::key_roster: return decode_then(envelope, &Agent::on_key_roster);
    case protocol::MessageType::share_bundle: return decode_then(envelope, &Agent::on_share_bundle);
    case protocol::MessageType::unmask_request: return decode_then(envelope, &Agent::on_unmask_request);
    case protocol::MessageType::refusal: {
      auto refusal = protocol::decode<protocol::Refusal>(envelope);
      if (!refusal) return drop(refusal.error().describe());
      log_("the aggregator refused a message: " + refusal->fault + ": " + refusal->detail);
      if (refusal->fault == "unknown device") {  // it restarted and lost our session
        welcomed_ = false;
        next_hello_ = Clock::now();
      }
      return;
    }
    default:
      return drop("unexpected " + std::string(*protocol::message_type_name(static_cast<std::uint16_t>(envelope.type()))));
  }
}

template <typename M>
void Agent::decode_then(const protocol::Envelope& envelope, void (Agent::*handler)(const M&)) {
  auto message = protocol::decode<M>(envelope);
  if (!message) return drop(message.error().describe());
  (this->*handler)(*message);
}

bool Agent::adopt_model(std::span<const std::uint8_t> payload, std::uint64_t expected_version, const char* what) {
  auto received = weights::decode_weights(payload, std::string(what) + " model");
  if (!received) {
    drop(received.error().message);
    return false;
  }
  if (received->layout().hash() != model_.layout().hash()) {
    drop(std::string(what) + " model has layout " + received->layout().short_hash() + ", this device's " +
         model_.name() + " has " + model_.layout().short_hash() + ": check the model setting");
    return false;
  }
  if (received->version() != expected_version) {
    drop(std::string(what) + " names model version " + std::to_string(expected_version) + " but carries version " +
         std::to_string(received->version()));
    return false;
  }
  global_ = std::move(received).value();
  global_hash_.reset();
  model_unsaved_ = !options_.state_dir.empty();
  return true;
}

void Agent::keep_model_on_disk() {
  if (!model_unsaved_) return;
  model_unsaved_ = false;
  if (auto status = weights::write_weights_file(model_path(options_.state_dir), *global_); !status) {
    log_("could not keep the model on disk: " + status.error().message);
  }
}

bool Agent::holds_version(std::uint64_t version, const char* what) {
  if (global_ && global_->version() == version) return true;
  drop(std::string(what) + " for model version " + std::to_string(version) +
       " came without the model, and this device holds " +
       (global_ ? "version " + std::to_string(global_->version()) : std::string("none")) + "; saying hello so it is sent");
  say_hello();
  return false;
}

std::optional<std::unique_lock<std::mutex>> Agent::load_global_model() {
  std::unique_lock<std::mutex> gate;
  if (options_.compute_gate) gate = std::unique_lock(*options_.compute_gate);
  if (auto status = model_.set_weights(*global_); !status) {
    log_("cannot load the global model: " + status.error().message);
    return std::nullopt;
  }
  return gate;
}

void Agent::train_round(const protocol::TrainTask& task) {
  if (task.round <= last_round_) {
    return drop("train task for round " + std::to_string(task.round) + ", but round " + std::to_string(last_round_) +
                " was already trained (out of order or replayed)");
  }
  if (!holds_version(task.model_version, "train task")) return;
  if (!global_hash_) global_hash_ = updater::values_hash(*global_);  // once per model, not per round
  if (*global_hash_ != task.model_hash) {
    // The copy held is not the model the server announced: fetch it again.
    drop("train task for round " + std::to_string(task.round) + ": the model held as version " +
         std::to_string(task.model_version) + " does not have the hash the server announced; asking for the model");
    global_.reset();
    return say_hello();
  }
  auto plan = training_plan_from_wire(task.plan);
  if (!plan) return drop(plan.error().message);
  last_round_ = task.round;
  secure_.reset();  // a new round ends any older one
  const auto start = Clock::now();
  Result<TrainingResult> result = TrainingResult{};
  if (options_.zero_update) {
    result->update.assign(global_->values().size(), 0.0f);
    result->samples = train_.size();
  } else {
    auto gate = load_global_model();
    if (!gate) return;
    result = train(model_, train_, *plan);
    if (gate->owns_lock()) gate->unlock();
    if (!result) return log_("training for round " + std::to_string(task.round) + " failed: " + result.error().message);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (options_.keep_updates) keep_update(task.round, result->update);
  if (!options_.zero_update) {
    log_("round " + std::to_string(task.round) + ": trained on " + std::to_string(result->samples) + " samples in " +
         fmt(seconds) + " s, loss " + fmt(result->before.loss) + " -> " + fmt(result->after.loss) + ", accuracy " +
         fmt(result->before.accuracy) + " -> " + fmt(result->after.accuracy));
  }
  if (auto problem = non_finite(*result)) {
    ++counters_.rounds_diverged;
    return log_("round " + std::to_string(task.round) + ": training diverged, not taking part: " + *problem);
  }
  drop_point_ = options_.drop_out ? options_.drop_out(task.round) : DropPoint::none;
  if (drops_at(DropPoint::before_report, task.round)) return;
  if (task.secure) return start_secure_round(task, *result);
  if (options_.hold_updates_from_round > 0 && task.round >= options_.hold_updates_from_round) {
    return log_("round " + std::to_string(task.round) + ": trained; holding the update (debug.hold_updates_from_round)");
  }
  send_update(task, *result);
}

void Agent::send_update(const protocol::TrainTask& task, TrainingResult& result) {
  auto clipped = clip_update(std::move(result.update), task.privacy.clip_norm);
  result.update = std::move(clipped.values);
  protocol::UpdateReport report{task.round,         task.model_version,     result.samples,
                                result.before.loss, result.before.accuracy, result.after.loss,
                                result.after.accuracy};
  report.unclipped = !clipped.clipped;
  // In parts, so that the aggregator folds each as it comes and never holds the whole update.
  const std::span<const float> update = result.update;
  for (report.offset = 0; report.offset < update.size(); report.offset += protocol::kUpdatePartValues) {
    std::vector<zmq::message_t> payloads;
    payloads.push_back(frame_of(update.subspan(report.offset, std::min(protocol::kUpdatePartValues,
                                                                       update.size() - report.offset))));
    send(protocol::encode(report, std::move(payloads)));
  }
  ++counters_.rounds_trained;
  if (options_.zero_update) log_("round " + std::to_string(task.round) + ": sent an all-zero update (debug.zero_update)");
}

bool Agent::drops_at(DropPoint point, std::uint64_t round) {
  if (drop_point_ != point) return false;
  log_("round " + std::to_string(round) + ": dropping out of the round (simulated)");
  secure_.reset();
  drop_point_ = DropPoint::none;
  return true;
}

void Agent::start_secure_round(const protocol::TrainTask& task, TrainingResult& result) {
  const auto& params = *task.secure;
  auto input = secure_input(std::move(result.update), result.samples, task.privacy, fresh_seed());
  std::vector<std::uint32_t> words(input.values.size());
  const weights::ModularQuantizer quantizer{static_cast<unsigned>(params.bits), params.scale, params.range};
  quantizer.quantize(input.values, words, fresh_seed());
  crypto::wipe(input.values.data(), input.values.size() * sizeof(float));
  secure_ = std::make_unique<SecureAggregationClient>(identity_, task.round, params, std::move(words));
  secure_loss_after_ = result.after.loss;
  secure_accuracy_after_ = result.after.accuracy;
  send(protocol::encode(secure_->advertise()));
}

bool Agent::expects_secure(std::uint64_t round, const char* what) {
  if (secure_ && secure_->round() == round) return true;
  drop(std::string(what) + " for round " + std::to_string(round) + ", which is not this device's open secure round");
  return false;
}

void Agent::on_key_roster(const protocol::KeyRoster& roster) {
  if (!expects_secure(roster.round, "a key roster") || drops_at(DropPoint::before_sharing, roster.round)) return;
  auto shares = secure_->share_keys(roster, options_.trusted_peers ? &*options_.trusted_peers : nullptr);
  if (!shares) {
    secure_.reset();
    return drop(shares.error().message);
  }
  send(protocol::encode(*shares));
}

void Agent::on_share_bundle(const protocol::ShareBundle& bundle) {
  if (!expects_secure(bundle.round, "a share bundle") || drops_at(DropPoint::before_input, bundle.round)) return;
  if (options_.hold_updates_from_round > 0 && bundle.round >= options_.hold_updates_from_round) {
    return log_("round " + std::to_string(bundle.round) + ": keys shared; holding the masked input (debug.hold_updates_from_round)");
  }
  auto masked = secure_->masked_input(bundle);
  if (!masked) {
    secure_.reset();
    return drop(masked.error().message);
  }
  protocol::MaskedInput part{bundle.round, 0, secure_loss_after_, secure_accuracy_after_};
  const std::span<const std::uint32_t> words = *masked;
  for (part.offset = 0; part.offset < words.size(); part.offset += protocol::kUpdatePartValues) {
    std::vector<zmq::message_t> payloads;
    payloads.push_back(frame_of(words.subspan(part.offset, std::min(protocol::kUpdatePartValues, words.size() - part.offset))));
    send(protocol::encode(part, std::move(payloads)));
  }
  ++counters_.rounds_trained;
}

void Agent::on_unmask_request(const protocol::UnmaskRequest& request) {
  if (!expects_secure(request.round, "an unmasking request") || drops_at(DropPoint::before_unmasking, request.round)) {
    return;
  }
  auto response = secure_->unmask(request);
  secure_.reset();  // the round is over for this device: its secrets are wiped
  if (!response) return drop(response.error().message);
  send(protocol::encode(*response));
  log_("round " + std::to_string(request.round) + ": secure aggregation done");
}

void Agent::keep_update(std::uint64_t round, const std::vector<float>& update) {
  const auto dir = options_.state_dir / "updates";
  std::error_code ignored;
  std::filesystem::create_directories(dir, ignored);
  const auto base = dir / ("base-v" + std::to_string(global_->version()) + ".weights");
  auto kept = weights::write_weights_file(base, *global_);
  if (kept) {
    auto values = weights::Weights::from_values(global_->layout(), global_->version(), update);
    kept = values ? weights::write_weights_file(dir / ("round-" + std::to_string(round) + ".update"), *values)
                  : Status(values.error());
  }
  if (!kept) log_("could not keep the update of round " + std::to_string(round) + ": " + kept.error().message);
}

void Agent::evaluate_round(const protocol::EvaluateTask& task) {
  if (task.round <= last_evaluation_) {
    return drop("evaluate task for round " + std::to_string(task.round) + " after round " +
                std::to_string(last_evaluation_) + " (out of order or replayed)");
  }
  if (!holds_version(task.model_version, "evaluate task")) return;
  last_evaluation_ = task.round;
  const Dataset& data = held_out_.size() > 0 ? held_out_ : train_;
  auto gate = load_global_model();
  if (!gate) return;
  auto evaluation = evaluate(model_, data);
  if (gate->owns_lock()) gate->unlock();
  if (!evaluation) return log_("evaluation failed: " + evaluation.error().message);
  send(protocol::encode(protocol::EvaluationReport{task.round, task.model_version, evaluation->samples,
                                                   evaluation->loss, evaluation->accuracy}));
  ++counters_.evaluations;
  log_("evaluated model version " + std::to_string(task.model_version) + " on " + std::to_string(evaluation->samples) +
       " held-out samples: accuracy " + fmt(evaluation->accuracy));
}

}  // namespace shoal::client
