#include "shoal/aggregator/round_coordinator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "shoal/updater/delta_codec.h"
#include "shoal/weights/integer_buffers.h"

namespace shoal::aggregator {
namespace {

constexpr const char* kServerVersion = "shoal-aggregator 0.1.0";
constexpr std::uint64_t kNoModel = std::numeric_limits<std::uint64_t>::max();

Error invalid(const std::string& field, const std::string& why) {
  return make_error(ErrorCode::invalid_argument, "round config: " + field + " " + why);
}

}  // namespace

Status RoundConfig::validate() const {
  if (min_devices < 1) return invalid("min_devices", "must be at least 1");
  if (max_devices < min_devices) return invalid("max_devices", "must be at least min_devices");
  if (!(fraction > 0.0 && fraction <= 1.0)) return invalid("fraction", "must be in (0, 1]");
  if (train_deadline.count() <= 0) return invalid("train_deadline", "must be positive");
  if (device_timeout.count() <= 0) return invalid("device_timeout", "must be positive");
  if (auto e = plan.check()) return invalid("plan." + e->field, e->detail);
  if (!(trim_fraction >= 0.0 && trim_fraction < 0.5)) return invalid("trim_fraction", "must be in [0, 0.5)");
  if (!(max_update_norm >= 0) || !std::isfinite(max_update_norm)) return invalid("max_update_norm", "must be >= 0");
  if (secure.enabled && max_update_norm > 0) {
    return invalid("max_update_norm",
                   "needs plain mode: in secure mode the server never sees an update (secure.range clamps each value)");
  }
  if (evaluation_deadline.count() <= 0) return invalid("evaluation_deadline", "must be positive");
  if (secure.bits < 8 || secure.bits > 32) return invalid("secure.bits", "must be in [8, 32]");
  if (!(secure.range > 0) || !std::isfinite(secure.range)) return invalid("secure.range", "must be positive");
  if (secure.weight_cap < 1) return invalid("secure.weight_cap", "must be positive");
  if (secure.phase_deadline.count() <= 0) return invalid("secure.phase_deadline", "must be positive");
  if (secure.upload_memory_bytes == 0) return invalid("secure.upload_memory_mb", "must be in [1, " + std::to_string(kMaxMemoryMb) + "]");
  if (secure.enabled && min_devices < 2) return invalid("min_devices", "must be at least 2 in secure mode");
  if (secure.enabled && combiner != CombinerKind::mean) {
    return invalid("combiner", "must be mean in secure mode: the server sees only the sum");
  }
  if (!(privacy.clip_norm >= 0) || !std::isfinite(privacy.clip_norm)) return invalid("privacy.clip_norm", "must be >= 0");
  if (!(privacy.noise_multiplier >= 0) || !std::isfinite(privacy.noise_multiplier)) {
    return invalid("privacy.noise_multiplier", "must be >= 0");
  }
  if ((privacy.enabled() || privacy.adaptive_clipping) && privacy.clip_norm <= 0) {
    return invalid("privacy.clip_norm", "must be positive with noise or adaptive clipping (it is the starting C)");
  }
  if (!(privacy.target_quantile > 0 && privacy.target_quantile < 1)) return invalid("privacy.target_quantile", "must be in (0, 1)");
  if (!(privacy.clip_learning_rate > 0)) return invalid("privacy.clip_learning_rate", "must be positive");
  if (!(privacy.clip_count_stddev >= 0)) return invalid("privacy.clip_count_stddev", "must be >= 0");
  if (!(privacy.epsilon_budget >= 0)) return invalid("privacy.epsilon_budget", "must be >= 0");
  if (!(privacy.delta > 0 && privacy.delta < 1)) return invalid("privacy.delta", "must be in (0, 1)");
  if (privacy.enabled() && combiner != CombinerKind::mean) return invalid("combiner", "must be mean with DP noise");
  return ok_status();
}

Result<RoundCoordinator> RoundCoordinator::create(const RoundConfig& config, weights::Weights global,
                                                  ServerOptimizer optimizer, std::uint64_t rounds_started,
                                                  crypto::RandomSource& random) {
  if (auto status = config.validate(); !status) return status.error();
  auto local = weights::match_tensors(global.layout(), config.local_tensors);
  if (!local) return make_error(ErrorCode::invalid_argument, "aggregation.local_tensors: " + local.error().message);
  const auto& tensors = global.layout().tensors();
  for (std::size_t i = 0; i < tensors.size() && config.privacy.enabled(); ++i) {
    if (tensors[i].kind != weights::TensorKind::buffer || std::binary_search(local->begin(), local->end(), i)) continue;
    return make_error(ErrorCode::invalid_argument,
                      "privacy: the model's buffer '" + tensors[i].name +
                          "' (e.g. BatchNorm running statistics) is computed from each device's data outside the "
                          "clipped update, so differential privacy cannot cover it; use GroupNorm or LayerNorm "
                          "instead of BatchNorm, or keep the statistics on the devices (FedBN: "
                          "aggregation.local_tensors)");
  }
  RoundCoordinator coordinator(config, std::move(global), std::move(optimizer), rounds_started, random);
  coordinator.local_tensors_ = std::move(local).value();
  return coordinator;
}

RoundCoordinator::RoundCoordinator(const RoundConfig& config, weights::Weights global, ServerOptimizer optimizer,
                                   std::uint64_t rounds_started, crypto::RandomSource& random)
    : config_(config),
      global_(std::move(global)),
      optimizer_(std::move(optimizer)),
      rounds_started_(rounds_started),
      rng_(config.seed ^ rounds_started),
      clip_norm_(config.privacy.clip_norm),
      random_(&random),
      noise_rng_(random.next_u64()) {}  // DP noise the operator cannot predict

void RoundCoordinator::set_device(const DeviceKey& device, DeviceState state) {
  auto [entry, inserted] = devices_.try_emplace(device, state);
  if (!inserted) {
    candidates_ -= is_candidate(entry->second);
    entry->second = state;
  }
  candidates_ += is_candidate(state);
}

void RoundCoordinator::erase_device(std::map<DeviceKey, DeviceState>::iterator device) {
  candidates_ -= is_candidate(device->second);
  devices_.erase(device);
}

void RoundCoordinator::on_hello(const DeviceKey& device, const protocol::Hello& hello, Clock::time_point now) {
  // Version 0 in a hello means "no model yet": the initial model is version 0 too, so send it anyway.
  const auto held = hello.model_version == 0 ? kNoModel : hello.model_version;
  set_device(device, DeviceState{held, hello.eligible, now});
  const auto heartbeat = static_cast<std::uint64_t>(config_.device_timeout.count() / 3);
  outbox_.push_back({device, protocol::Welcome{kServerVersion, global_.version(), std::max<std::uint64_t>(heartbeat, 1)}});
}

bool RoundCoordinator::touch(const DeviceKey& device, Clock::time_point now) {
  const auto found = devices_.find(device);
  if (found == devices_.end()) return false;
  found->second.last_seen = now;
  return true;
}

void RoundCoordinator::on_heartbeat(const DeviceKey& device, std::uint64_t sequence, Clock::time_point now) {
  const auto found = devices_.find(device);
  if (found == devices_.end()) {
    return refuse(device, "unknown device",
                  "this aggregator has no session for the device (it may have restarted); say hello");
  }
  auto& state = found->second;
  if (sequence <= state.last_heartbeat) {
    return refuse(device, "heartbeat refused",
                  "sequence " + std::to_string(sequence) + " does not follow " + std::to_string(state.last_heartbeat) +
                      " (replayed or out of order)");
  }
  state.last_heartbeat = sequence;
  state.last_seen = now;
}

void RoundCoordinator::refuse(const DeviceKey& device, const std::string& fault, const std::string& detail) {
  outbox_.push_back({device, protocol::Refusal{fault, detail}});
}

std::optional<std::string> RoundCoordinator::check_update(const DeviceKey& device,
                                                          const protocol::UpdateReport& report,
                                                          std::span<const std::uint8_t> payload) const {
  const std::string round = "round " + std::to_string(report.round);
  const std::string open = round_ ? "the open round is " + std::to_string(round_->id) : "no round is open";
  if (!round_ || report.round != round_->id) {
    const bool past = report.round <= rounds_started_;  // every round up to rounds_started_ has begun
    return past ? round + " is closed (the update is late); " + open : round + " has not started; " + open;
  }
  if (!round_->cohort.contains(device)) return "not in the cohort of round " + std::to_string(round_->id);
  if (round_->secure) {
    return "round " + std::to_string(round_->id) + " uses secure aggregation: a plain update is refused";
  }
  if (round_->reported.contains(device)) return "duplicate update for round " + std::to_string(round_->id);
  if (round_->refused.contains(device)) {
    return "the update for round " + std::to_string(round_->id) + " was already refused";
  }
  if (report.base_version != global_.version()) {
    return "update trained from model version " + std::to_string(report.base_version) + ", the round's model is " +
           std::to_string(global_.version());
  }
  const auto upload = round_->uploads.find(device);
  const std::size_t expected_offset = upload == round_->uploads.end() ? 0 : upload->second.received;
  if (report.offset != expected_offset) {
    return "update part at offset " + std::to_string(report.offset) + " out of order: the next is at " +
           std::to_string(expected_offset);
  }
  if (report.samples > kMaxDeviceSamples) {
    return "update says " + std::to_string(report.samples) + " samples, above the cap of " +
           std::to_string(kMaxDeviceSamples) + " a device may claim";
  }
  if (upload != round_->uploads.end() && report.samples != upload->second.samples) {
    return "update part says " + std::to_string(report.samples) + " samples, its first part said " +
           std::to_string(upload->second.samples);
  }
  const std::size_t parameters = global_.layout().value_count();
  const std::size_t values = std::min(protocol::kUpdatePartValues, parameters - std::min(parameters, report.offset));
  if (payload.size() != values * sizeof(float)) {
    return "update part of " + std::to_string(payload.size()) + " bytes at offset " + std::to_string(report.offset) +
           " does not fit layout " + global_.layout().short_hash() + " (" + std::to_string(parameters) +
           " float32 values, sent in parts of " + std::to_string(protocol::kUpdatePartValues) + "; this part has " +
           std::to_string(values * sizeof(float)) + " bytes)";
  }
  return std::nullopt;
}

std::optional<std::string> RoundCoordinator::fold_part(const DeviceKey& device, const protocol::UpdateReport& report,
                                                       std::span<const std::uint8_t> payload) {
  // Frames are malloc'd and so float-aligned; copy only when one is not.
  std::vector<float> aligned_copy;
  std::span<const float> values;
  if (reinterpret_cast<std::uintptr_t>(payload.data()) % alignof(float) == 0) {
    values = {reinterpret_cast<const float*>(payload.data()), payload.size() / sizeof(float)};
  } else {
    aligned_copy.resize(payload.size() / sizeof(float));
    std::memcpy(aligned_copy.data(), payload.data(), payload.size());
    values = aligned_copy;
  }
  auto& upload = round_->uploads.try_emplace(device, Upload{round_->uploads.size(), report.samples}).first->second;
  if (auto problem = add_to_norm(upload, values)) return problem;
  const auto weight = config_.privacy.enabled() ? 1.0 : static_cast<double>(report.samples);
  if (auto folded = round_->combiner->add_part(upload.number, report.offset, values, weight); !folded) {
    return folded.error().message;
  }
  upload.received += values.size();
  if (upload.received == global_.layout().value_count()) {
    if (auto finished = round_->combiner->finish_update(upload.number, weight); !finished) {
      return finished.error().message;
    }
  }
  return std::nullopt;
}

std::optional<std::string> RoundCoordinator::on_update(const DeviceKey& device, const protocol::UpdateReport& report,
                                                       std::span<const std::uint8_t> payload, Clock::time_point now) {
  touch(device, now);
  auto problem = check_update(device, report, payload);
  const bool already_refused = problem && round_ && round_->refused.contains(device);
  if (!problem) problem = fold_part(device, report, payload);
  if (problem) {
    if (already_refused) return problem;  // the device was told once
    // A member's refused update for this round is over: parts already folded stay, and no more are taken.
    if (round_ && report.round == round_->id && round_->cohort.contains(device) && !round_->reported.contains(device)) {
      round_->refused.insert(device);
    }
    if (round_) ++round_->rejected;
    refuse(device, "update refused", *problem);
    close_round_if_all_answered(now);
    return problem;
  }
  if (round_->uploads.at(device).received < global_.layout().value_count()) return std::nullopt;  // more to come
  round_->reported.insert(device);
  if (report.unclipped) ++round_->unclipped;
  round_->samples += report.samples;
  round_->loss_sum += report.loss_after * static_cast<double>(report.samples);
  round_->accuracy_sum += report.accuracy_after * static_cast<double>(report.samples);
  if (auto found = devices_.find(device); found != devices_.end()) found->second.model_version = global_.version();
  close_round_if_all_answered(now);
  return std::nullopt;
}

std::optional<std::string> RoundCoordinator::on_evaluation(const DeviceKey& device,
                                                           const protocol::EvaluationReport& report,
                                                           Clock::time_point now) {
  touch(device, now);
  std::optional<std::string> problem;
  if (!evaluation_ || report.round != evaluation_->record.round ||
      report.model_version != evaluation_->record.model_version) {
    problem = "no evaluation of round " + std::to_string(report.round) + " (model version " +
              std::to_string(report.model_version) + ") is open";
  } else if (!evaluation_->asked.contains(device)) {
    problem = "not asked to evaluate round " + std::to_string(report.round);
  } else if (evaluation_->reported.contains(device)) {
    problem = "duplicate evaluation for round " + std::to_string(report.round);
  } else if (report.samples > kMaxDeviceSamples) {
    problem = "evaluation says " + std::to_string(report.samples) + " samples, above the cap of " +
              std::to_string(kMaxDeviceSamples) + " a device may claim";
  }
  if (problem) {
    refuse(device, "evaluation refused", *problem);
    return problem;
  }
  auto& record = evaluation_->record;
  evaluation_->reported.insert(device);
  record.samples += report.samples;
  record.loss += report.loss * static_cast<double>(report.samples);  // sums until close_evaluation
  record.accuracy += report.accuracy * static_cast<double>(report.samples);
  if (evaluation_->reported.size() == evaluation_->asked.size()) close_evaluation(now);
  return std::nullopt;
}

void RoundCoordinator::on_revoked(const DeviceKey& device, Clock::time_point now) {
  if (auto found = devices_.find(device); found != devices_.end()) erase_device(found);
  if (evaluation_ && evaluation_->asked.contains(device) && !evaluation_->reported.contains(device)) {
    evaluation_->asked.erase(device);
    --evaluation_->record.asked;
    if (evaluation_->reported.size() == evaluation_->asked.size()) close_evaluation(now);
  }
  if (round_ && round_->cohort.contains(device) && !round_->reported.contains(device)) {
    round_->refused.insert(device);
    close_round_if_all_answered(now);
  }
}

void RoundCoordinator::close_round_if_all_answered(Clock::time_point now) {
  if (round_ && round_->reported.size() + round_->refused.size() == round_->cohort.size()) close_round(now);
}

void RoundCoordinator::on_tick(Clock::time_point now) {
  forget_silent_devices(now);
  if (round_ && round_->secure) {
    advance_secure_if_due(now);
  } else if (round_ && now >= round_->deadline) {
    close_round(now);
  }
  if (evaluation_ && now >= evaluation_->deadline) close_evaluation(now);
  // A new round waits until the caller has taken (and checkpointed) the finished ones.
  if (!round_ && !evaluation_ && finished_.empty()) try_start_round(now);
}

void RoundCoordinator::forget_silent_devices(Clock::time_point now) {
  // A scan costs a pass over every device, so it runs a few times per
  // timeout rather than at every tick: a fleet of 100,000 ticks often.
  if (now < next_forget_scan_) return;
  next_forget_scan_ = now + config_.device_timeout / 8;
  // Cohort members stay until the round closes, which counts them as dropped.
  for (auto entry = devices_.begin(); entry != devices_.end();) {
    const bool silent = now - entry->second.last_seen > config_.device_timeout;
    if (silent && !(round_ && round_->cohort.contains(entry->first))) {
      erase_device(entry++);
    } else {
      ++entry;
    }
  }
}

Clock::time_point RoundCoordinator::next_deadline() const {
  auto next = devices_.empty() ? Clock::time_point::max() : next_forget_scan_;
  if (round_) next = std::min(next, round_->secure ? round_->phase_deadline : round_->deadline);
  if (evaluation_) next = std::min(next, evaluation_->deadline);
  return next;
}

bool RoundCoordinator::send_model_if_behind(const DeviceKey& device) {
  auto& state = devices_.at(device);
  const bool behind = state.model_version != global_.version();
  state.model_version = global_.version();  // it holds this version once the task arrives
  return behind;
}

void RoundCoordinator::try_start_round(Clock::time_point now) {
  if (config_.final_version > 0 && global_.version() >= config_.final_version) return;
  if (!stopped_.empty()) return;
  if (candidates_ < std::max(config_.min_devices, config_.min_available)) return;
  std::vector<DeviceKey> candidates;
  candidates.reserve(candidates_);
  for (const auto& [key, state] : devices_) {
    if (is_candidate(state)) candidates.push_back(key);
  }
  auto wanted = static_cast<std::size_t>(std::ceil(config_.fraction * static_cast<double>(candidates.size())));
  wanted = std::clamp(wanted, config_.min_devices, std::min(config_.max_devices, candidates.size()));
  std::vector<DeviceKey> cohort;
  std::sample(candidates.begin(), candidates.end(), std::back_inserter(cohort), wanted, rng_);

  OpenRound round;
  round.id = rounds_started_ + 1;
  round.cohort = {cohort.begin(), cohort.end()};
  round.started = now;
  round.deadline = now + config_.train_deadline;
  protocol::TrainTask task{round.id, global_.version(), static_cast<std::uint64_t>(config_.train_deadline.count()),
                           config_.plan};
  task.model_hash = updater::values_hash(global_);
  task.local_tensors = local_tensors_;
  if (auto refused = plan_privacy(round, task, candidates.size())) {
    stopped_ = *refused;
    return;
  }
  if (config_.secure.enabled) {
    if (auto problem = start_secure(round, task, cohort)) {
      stopped_ = *problem;
      return;
    }
  } else {
    auto combiner = make_combiner(config_.combiner, global_.layout().value_count(), config_.trim_fraction,
                                  protocol::kUpdatePartValues);
    if (!combiner) return;  // validated in create(); cannot fail here
    round.combiner = std::move(combiner).value();
  }
  ++rounds_started_;
  for (const auto& device : cohort) outbox_.push_back({device, task, send_model_if_behind(device)});
  round_ = std::move(round);
}

void RoundCoordinator::close_round(Clock::time_point now) {
  RoundRecord record;
  record.round = round_->id;
  record.version_before = global_.version();
  record.cohort = round_->cohort.size();
  record.secure = round_->secure.has_value();
  record.clip_norm = clip_norm_;
  record.reported = record.secure ? round_->secure->survivors() : round_->reported.size();
  if (record.secure) {
    record.dropped = record.cohort - record.reported;  // out at some phase: the server cannot tell slow from gone
  } else {
    for (const auto& device : round_->cohort) {
      if (round_->reported.contains(device) || round_->refused.contains(device)) continue;
      const auto& state = devices_.at(device);
      ++(now - state.last_seen > config_.device_timeout ? record.dropped : record.stragglers);
    }
  }
  record.rejected = round_->rejected;
  record.seconds = std::chrono::duration<double>(now - round_->started).count();
  record.started = round_->started;
  record.phases = std::move(round_->phases);
  if (!record.secure) record.phases.push_back({"training", record.seconds, record.reported});
  if (record.secure && round_->secure->phase() != SecureAggregationRound::Phase::finished) {
    record.abandon_reason = round_->abandon_reason.empty()
                                ? std::string("phase ") + SecureAggregationRound::phase_name(round_->secure->phase()) +
                                      " had not finished"
                                : round_->abandon_reason;
  } else if (record.reported < config_.min_devices) {
    record.abandon_reason = std::to_string(record.reported) + " of " + std::to_string(record.cohort) +
                            " devices " + (record.secure ? "had their input in the secure sum" : "reported by the deadline") +
                            ", at least " + std::to_string(config_.min_devices) + " needed";
  } else {
    const auto apply_start = Clock::now();  // real time: `now` may be a test's clock
    double unclipped_fraction = static_cast<double>(round_->unclipped) / static_cast<double>(record.reported);
    if (!record.secure && config_.privacy.enabled() && config_.privacy.adaptive_clipping) {
      unclipped_fraction += std::normal_distribution<double>(0, round_->count_noise_stddev)(noise_rng_) /
                            static_cast<double>(record.reported);
    }
    auto mean = record.secure ? secure_mean(unclipped_fraction) : Result<std::vector<float>>(round_->combiner->take_result());
    std::optional<std::string> problem;
    if (!mean) {
      problem = mean.error().message;
    } else {
      problem = apply_mean(std::move(mean).value(), record);
    }
    if (problem) {
      record.abandon_reason = *problem;
    } else {
      if (config_.privacy.adaptive_clipping) adapt_clip(unclipped_fraction);
      record.apply_seconds = std::chrono::duration<double>(Clock::now() - apply_start).count();
    }
  }
  if (record.applied && config_.privacy.enabled()) {
    accountant_.add_steps(round_->sampling_rate, config_.privacy.noise_multiplier, 1);
  }
  if (config_.privacy.enabled()) {
    record.epsilon = accountant_.spent(config_.privacy.delta).epsilon;
    record.delta = config_.privacy.delta;
  }
  record.samples = round_->samples;  // only now: secure_mean sets a secure round's
  record.version_after = global_.version();
  const bool evaluate = record.applied && config_.evaluate_every > 0 && global_.version() % config_.evaluate_every == 0;
  finished_.push_back(std::move(record));
  round_.reset();
  if (evaluate) start_evaluation(now);
}

namespace {

// Value `index` named by its tensor: "value 12 (fc.bias[2])".
std::string value_name(const weights::Layout& layout, std::size_t index) {
  std::size_t t = 0;
  while (t + 1 < layout.tensors().size() && layout.offset(t + 1) <= index) ++t;
  return "value " + std::to_string(index) + " (" + layout.tensors()[t].name + "[" +
         std::to_string(index - layout.offset(t)) + "])";
}

std::optional<std::size_t> first_non_finite(std::span<const float> values) {
  const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
  if (bad == values.end()) return std::nullopt;
  return static_cast<std::size_t>(bad - values.begin());
}

}  // namespace

std::optional<std::string> RoundCoordinator::apply_mean(std::vector<float> mean, RoundRecord& record) {
  if (config_.privacy.enabled() && !round_->secure) add_central_noise(mean, record.reported);
  const auto& layout = global_.layout();
  drop_local_tensors(mean);
  if (auto bad = first_non_finite(mean)) {
    return "the round's mean update is not finite: " + value_name(layout, *bad) + " is " +
           (std::isnan(mean[*bad]) ? "NaN" : "infinite");
  }
  if (auto bad = first_non_finite_step(mean)) {
    return "applying the round's mean would make the global model non-finite at " + value_name(layout, *bad);
  }
  step_global(mean);
  global_.set_version(global_.version() + 1);
  record.applied = true;
  const double metric_weight = round_->secure ? static_cast<double>(round_->metrics_from.size())
                                              : static_cast<double>(round_->samples);
  if (metric_weight > 0) {
    record.mean_loss_after = round_->loss_sum / metric_weight;
    record.mean_accuracy_after = round_->accuracy_sum / metric_weight;
  }
  return std::nullopt;
}

// Zeroes the mean's local tensors: they keep the global model's values,
// whatever a device sent.
void RoundCoordinator::drop_local_tensors(std::span<float> mean) const {
  const auto& layout = global_.layout();
  for (const auto t : local_tensors_) {
    const auto range = mean.subspan(layout.offset(t), layout.tensors()[t].element_count());
    std::fill(range.begin(), range.end(), 0.0f);
  }
}

std::optional<std::size_t> RoundCoordinator::first_non_finite_step(std::span<const float> mean) const {
  const auto values = global_.values();
  const std::size_t parameters = global_.layout().parameter_value_count();
  if (auto bad = optimizer_.first_non_finite_step(mean.first(parameters), values.first(parameters))) return bad;
  for (std::size_t i = parameters; i < values.size(); ++i) {
    if (!std::isfinite(values[i] + mean[i])) return i;
  }
  return std::nullopt;
}

// Parameters move by the server optimiser; buffers take the mean update
// as it is (FedAvg of running statistics: no momentum, no adaptivity), and
// integer buffers are rounded to the nearest whole count.
void RoundCoordinator::step_global(std::span<const float> mean) {
  const auto& layout = global_.layout();
  const std::size_t parameters = layout.parameter_value_count();
  auto values = global_.values();
  optimizer_.apply(mean.first(parameters), values.first(parameters));
  for (std::size_t i = parameters; i < values.size(); ++i) values[i] += mean[i];
  weights::round_integer_buffers(layout, values);
}

void RoundCoordinator::start_evaluation(Clock::time_point now) {
  if (devices_.empty()) return;
  OpenEvaluation evaluation;
  evaluation.record.round = rounds_started_;
  evaluation.record.model_version = global_.version();
  evaluation.started = now;
  evaluation.deadline = now + config_.evaluation_deadline;
  const protocol::EvaluateTask task{rounds_started_, global_.version(),
                                    static_cast<std::uint64_t>(config_.evaluation_deadline.count())};
  for (const auto& [device, state] : devices_) {
    evaluation.asked.insert(device);
    outbox_.push_back({device, task, send_model_if_behind(device)});
  }
  evaluation.record.asked = evaluation.asked.size();
  evaluation_ = std::move(evaluation);
}

void RoundCoordinator::close_evaluation(Clock::time_point now) {
  auto record = evaluation_->record;
  record.reported = evaluation_->reported.size();
  if (record.samples > 0) {
    record.loss /= static_cast<double>(record.samples);
    record.accuracy /= static_cast<double>(record.samples);
  }
  record.seconds = std::chrono::duration<double>(now - evaluation_->started).count();
  evaluations_.push_back(record);
  evaluation_.reset();
}

std::vector<Outgoing> RoundCoordinator::take_outgoing() { return std::exchange(outbox_, {}); }

std::vector<RoundRecord> RoundCoordinator::take_finished() { return std::exchange(finished_, {}); }

std::vector<EvaluationRecord> RoundCoordinator::take_evaluations() { return std::exchange(evaluations_, {}); }

}  // namespace shoal::aggregator
