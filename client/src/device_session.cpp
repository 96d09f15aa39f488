#include "shoal/client/device_session.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <span>

#include "shoal/client/local_tensors.h"
#include "shoal/client/update_privatizer.h"
#include "shoal/protocol/messages.h"
#include "shoal/weights/integer_buffers.h"
#include "shoal/weights/modular_quantizer.h"
#include "shoal/weights/weights_file.h"

namespace shoal::client {
namespace {

constexpr std::chrono::milliseconds kFirstHelloBackoff{1'000};

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

// Decodes an M and hands it to `handler`, or drops the message.
template <typename M, typename Handler>
void decode_then(const protocol::Envelope& envelope, Handler&& handler, const std::function<void(std::string)>& drop) {
  auto message = protocol::decode<M>(envelope);
  if (!message) return drop(message.error().describe());
  handler(*message);
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

DeviceSession::DeviceSession(SessionSettings settings, const crypto::IdentityKeyPair& identity, weights::Layout layout,
                             ModelHolder& holder, RoundRandomness& randomness, LogSink log, SessionFaults faults)
    : settings_(std::move(settings)),
      identity_(identity),
      layout_(std::move(layout)),
      holder_(holder),
      randomness_(randomness),
      log_(std::move(log)),
      faults_(std::move(faults)) {}

DeviceSession::~DeviceSession() = default;

std::uint64_t DeviceSession::model_version() const {
  const auto* model = holder_.model();
  return model ? model->version() : 0;
}

void DeviceSession::start(Clock::time_point now) {
  started_ = true;
  welcomed_ = false;
  hello_backoff_ = kFirstHelloBackoff;
  next_hello_ = now;
}

Clock::time_point DeviceSession::next_wakeup() const {
  if (!started_) return Clock::time_point::max();
  return welcomed_ ? next_heartbeat_ : next_hello_;
}

void DeviceSession::say_hello() {
  eligible_ = !settings_.eligible || settings_.eligible();
  send(protocol::encode(protocol::Hello{kAgentVersion, model_version(), eligible_}));
}

void DeviceSession::drop(const std::string& why) {
  ++counters_.dropped_messages;
  log_("dropped a message from the aggregator: " + why);
}

void DeviceSession::on_undecodable(const protocol::DecodeError& error) { drop(error.describe()); }

void DeviceSession::on_tick(Clock::time_point now) {
  if (!started_) return;
  if (!welcomed_ && now >= next_hello_) {
    if (hello_backoff_ > kFirstHelloBackoff) log_("no welcome from " + settings_.server + " yet; saying hello again");
    say_hello();
    next_hello_ = now + hello_backoff_;
    hello_backoff_ = std::min(hello_backoff_ * 2, settings_.max_hello_backoff);
  }
  if (welcomed_ && now >= next_heartbeat_) {
    // A change of eligibility is announced with a fresh hello.
    if ((!settings_.eligible || settings_.eligible()) != eligible_) {
      say_hello();
    } else {
      send(protocol::encode(protocol::Heartbeat{++heartbeat_sequence_}));
    }
    next_heartbeat_ = now + heartbeat_interval_;
  }
}

void DeviceSession::on_disconnected(Clock::time_point now) {
  if (!welcomed_) return;
  log_("lost the connection to " + settings_.server + "; redialling");
  welcomed_ = false;
  hello_backoff_ = kFirstHelloBackoff;
  next_hello_ = now;  // queued until the new handshake completes
}

void DeviceSession::on_message(const protocol::Envelope& envelope, Clock::time_point now) {
  const auto dropper = [this](std::string why) { drop(why); };
  switch (envelope.type()) {
    case protocol::MessageType::welcome:
      return decode_then<protocol::Welcome>(envelope, [&](const auto& m) { on_welcome(m, now); }, dropper);
    case protocol::MessageType::train_task: {
      auto task = protocol::decode<protocol::TrainTask>(envelope);
      if (!task) return drop(task.error().describe());
      if (envelope.payload_count() == 1 && !adopt_model(envelope.payload(0), task->model_version, "train task")) return;
      return on_train_task(*task);
    }
    case protocol::MessageType::evaluate_task: {
      auto task = protocol::decode<protocol::EvaluateTask>(envelope);
      if (!task) return drop(task.error().describe());
      if (envelope.payload_count() == 1 && !adopt_model(envelope.payload(0), task->model_version, "evaluate task")) {
        return;
      }
      return on_evaluate_task(*task);
    }
    case protocol::MessageType::key_roster:
      return decode_then<protocol::KeyRoster>(envelope, [&](const auto& m) { on_key_roster(m); }, dropper);
    case protocol::MessageType::share_bundle:
      return decode_then<protocol::ShareBundle>(envelope, [&](const auto& m) { on_share_bundle(m); }, dropper);
    case protocol::MessageType::unmask_request:
      return decode_then<protocol::UnmaskRequest>(envelope, [&](const auto& m) { on_unmask_request(m); }, dropper);
    case protocol::MessageType::refusal:
      return decode_then<protocol::Refusal>(envelope, [&](const auto& m) { on_refusal(m, now); }, dropper);
    default:
      return drop("unexpected " + std::string(*protocol::message_type_name(static_cast<std::uint16_t>(envelope.type()))));
  }
}

void DeviceSession::on_welcome(const protocol::Welcome& welcome, Clock::time_point now) {
  if (!welcomed_) {
    log_("welcomed by " + welcome.server_version + ", global model version " + std::to_string(welcome.model_version));
  }
  welcomed_ = true;
  hello_backoff_ = kFirstHelloBackoff;
  heartbeat_interval_ = std::chrono::milliseconds(std::max<std::uint64_t>(welcome.heartbeat_interval_ms, 100));
  next_heartbeat_ = now + heartbeat_interval_;
}

void DeviceSession::on_refusal(const protocol::Refusal& refusal, Clock::time_point now) {
  log_("the aggregator refused a message: " + refusal.fault + ": " + refusal.detail);
  if (refusal.fault == "unknown device") {  // it restarted and lost our session
    welcomed_ = false;
    next_hello_ = now;
  }
}

bool DeviceSession::adopt_model(std::span<const std::uint8_t> payload, std::uint64_t expected_version, const char* what) {
  auto received = weights::decode_weights(payload, std::string(what) + " model");
  if (!received) {
    drop(received.error().message);
    return false;
  }
  if (received->layout().hash() != layout_.hash()) {
    drop(std::string(what) + " model has layout " + received->layout().short_hash() + ", this device's " +
         settings_.model + " has " + layout_.short_hash() + ": check the model setting");
    return false;
  }
  if (received->version() != expected_version) {
    drop(std::string(what) + " names model version " + std::to_string(expected_version) + " but carries version " +
         std::to_string(received->version()));
    return false;
  }
  holder_.adopt(std::move(received).value());
  return true;
}

bool DeviceSession::holds_version(std::uint64_t version, const char* what) {
  if (model_version() == version && holder_.model()) return true;
  drop(std::string(what) + " for model version " + std::to_string(version) +
       " came without the model, and this device holds " +
       (holder_.model() ? "version " + std::to_string(model_version()) : std::string("none")) +
       "; saying hello so it is sent");
  say_hello();
  return false;
}

void DeviceSession::on_train_task(const protocol::TrainTask& task) {
  if (task.round <= last_round_) {
    return drop("train task for round " + std::to_string(task.round) + ", but round " + std::to_string(last_round_) +
                " was already trained (out of order or replayed)");
  }
  if (!holds_version(task.model_version, "train task")) return;
  if (holder_.model_hash() != task.model_hash) {
    // The copy held is not the model the server announced: fetch it again.
    drop("train task for round " + std::to_string(task.round) + ": the model held as version " +
         std::to_string(task.model_version) + " does not have the hash the server announced; asking for the model");
    holder_.forget();
    return say_hello();
  }
  auto plan = training_plan_from_wire(task.plan);
  if (!plan) return drop(plan.error().message);
  if (!task.local_tensors.empty() && task.local_tensors.back() >= layout_.tensors().size()) {
    return drop("train task for round " + std::to_string(task.round) + " keeps tensor " +
                std::to_string(task.local_tensors.back()) + " local, but the model has " +
                std::to_string(layout_.tensors().size()) + " tensors");
  }
  last_round_ = task.round;
  secure_.reset();  // a new round ends any older one
  training_ = task;
  work_.emplace_back(std::in_place_type<TrainRequest>, task.round, *plan, task.local_tensors);
}

void DeviceSession::on_trained(std::uint64_t round, Result<TrainingResult> result, double seconds, Clock::time_point) {
  if (!training_ || training_->round != round) return;  // a later task replaced this one
  const protocol::TrainTask task = std::move(*training_);
  training_.reset();
  if (!result) return log_("training for round " + std::to_string(round) + " failed: " + result.error().message);
  log_("round " + std::to_string(round) + ": trained on " + std::to_string(result->samples) + " samples in " +
       fmt(seconds) + " s, loss " + fmt(result->before.loss) + " -> " + fmt(result->after.loss) + ", accuracy " +
       fmt(result->before.accuracy) + " -> " + fmt(result->after.accuracy));
  if (auto problem = non_finite(*result)) {
    ++counters_.rounds_diverged;
    return log_("round " + std::to_string(round) + ": training diverged, not taking part: " + *problem);
  }
  if (result->update.size() != layout_.value_count()) {
    return log_("round " + std::to_string(round) + ": training gave " + std::to_string(result->update.size()) +
                " values for a layout of " + std::to_string(layout_.value_count()) + ", not taking part");
  }
  zero_local(layout_, task.local_tensors, result->update);  // what stays on the device never leaves it
  drop_point_ = faults_.drop_out ? faults_.drop_out(round) : DropPoint::none;
  if (drops_at(DropPoint::before_report, round)) return;
  if (task.secure) return start_secure_round(task, *result);
  if (faults_.hold_updates_from_round > 0 && round >= faults_.hold_updates_from_round) {
    return log_("round " + std::to_string(round) + ": trained; holding the update (debug.hold_updates_from_round)");
  }
  send_update(task, *result);
}

void DeviceSession::send_update(const protocol::TrainTask& task, TrainingResult& result) {
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
}

bool DeviceSession::drops_at(DropPoint point, std::uint64_t round) {
  if (drop_point_ != point) return false;
  log_("round " + std::to_string(round) + ": dropping out of the round (simulated)");
  secure_.reset();
  drop_point_ = DropPoint::none;
  return true;
}

void DeviceSession::start_secure_round(const protocol::TrainTask& task, TrainingResult& result) {
  const auto& params = *task.secure;
  auto& random = randomness_.for_round(task.round);
  weights::scale_integer_buffers(layout_, result.update, 1.0f / weights::kSecureCountUnit);
  auto input = secure_input(std::move(result.update), result.samples, task.privacy, random.next_u64());
  std::vector<std::uint32_t> words(input.values.size());
  const weights::ModularQuantizer quantizer{static_cast<unsigned>(params.bits), params.scale, params.range};
  quantizer.quantize(input.values, words, random.next_u64());
  crypto::wipe(input.values.data(), input.values.size() * sizeof(float));
  secure_ = std::make_unique<SecureAggregationClient>(identity_, task.round, params, std::move(words), random);
  secure_loss_after_ = result.after.loss;
  secure_accuracy_after_ = result.after.accuracy;
  send(protocol::encode(secure_->advertise()));
}

bool DeviceSession::expects_secure(std::uint64_t round, const char* what) {
  if (secure_ && secure_->round() == round) return true;
  drop(std::string(what) + " for round " + std::to_string(round) + ", which is not this device's open secure round");
  return false;
}

void DeviceSession::on_key_roster(const protocol::KeyRoster& roster) {
  if (!expects_secure(roster.round, "a key roster") || drops_at(DropPoint::before_sharing, roster.round)) return;
  auto shares = secure_->share_keys(roster, settings_.trusted_peers);
  if (!shares) {
    secure_.reset();
    return drop(shares.error().message);
  }
  send(protocol::encode(*shares));
}

void DeviceSession::on_share_bundle(const protocol::ShareBundle& bundle) {
  if (!expects_secure(bundle.round, "a share bundle") || drops_at(DropPoint::before_input, bundle.round)) return;
  if (faults_.hold_updates_from_round > 0 && bundle.round >= faults_.hold_updates_from_round) {
    return log_("round " + std::to_string(bundle.round) +
                ": keys shared; holding the masked input (debug.hold_updates_from_round)");
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
    payloads.push_back(
        frame_of(words.subspan(part.offset, std::min(protocol::kUpdatePartValues, words.size() - part.offset))));
    send(protocol::encode(part, std::move(payloads)));
  }
  ++counters_.rounds_trained;
}

void DeviceSession::on_unmask_request(const protocol::UnmaskRequest& request) {
  if (!expects_secure(request.round, "an unmasking request") || drops_at(DropPoint::before_unmasking, request.round)) {
    return;
  }
  auto response = secure_->unmask(request);
  secure_.reset();  // the round is over for this device: its secrets are wiped
  if (!response) return drop(response.error().message);
  send(protocol::encode(*response));
  log_("round " + std::to_string(request.round) + ": secure aggregation done");
}

void DeviceSession::on_evaluate_task(const protocol::EvaluateTask& task) {
  if (task.round <= last_evaluation_) {
    return drop("evaluate task for round " + std::to_string(task.round) + " after round " +
                std::to_string(last_evaluation_) + " (out of order or replayed)");
  }
  if (!holds_version(task.model_version, "evaluate task")) return;
  last_evaluation_ = task.round;
  // Built in place: a temporary variant holding a TrainRequest's vector trips
  // GCC 12's maybe-uninitialized warning under ASan.
  work_.emplace_back(std::in_place_type<EvaluateRequest>, task.round, task.model_version);
}

void DeviceSession::on_evaluated(const EvaluateRequest& request, Result<Evaluation> evaluation, Clock::time_point) {
  if (!evaluation) return log_("evaluation failed: " + evaluation.error().message);
  send(protocol::encode(protocol::EvaluationReport{request.round, request.model_version, evaluation->samples,
                                                   evaluation->loss, evaluation->accuracy}));
  ++counters_.evaluations;
  log_("evaluated model version " + std::to_string(request.model_version) + " on " +
       std::to_string(evaluation->samples) + " held-out samples: accuracy " + fmt(evaluation->accuracy));
}

}  // namespace shoal::client
