// The secure-aggregation side of RoundCoordinator: setting up a SecAgg+
// round, feeding it the devices' messages, moving it through its phases as
// they complete or their deadlines pass, and decoding the recovered sum.
#include "shoal/aggregator/round_coordinator.h"

#include <cmath>

#include "shoal/crypto/key_file.h"
#include "shoal/weights/integer_buffers.h"
#include "shoal/weights/modular_quantizer.h"

namespace shoal::aggregator {
namespace {

constexpr double kNoiseHeadroom = 6;  // standard deviations of device noise the quantiser's range allows for

// The phase's name in a round record's timeline.
const char* timeline_name(SecureAggregationRound::Phase phase) {
  switch (phase) {
    case SecureAggregationRound::Phase::advertising: return "advertising";
    case SecureAggregationRound::Phase::sharing: return "sharing";
    case SecureAggregationRound::Phase::masking: return "masking";
    case SecureAggregationRound::Phase::unmasking: return "unmasking";
    case SecureAggregationRound::Phase::finished: break;
  }
  return "finished";
}

}  // namespace

std::optional<std::string> RoundCoordinator::start_secure(OpenRound& round, protocol::TrainTask& task,
                                                          const std::vector<DeviceKey>& cohort) {
  const std::size_t n = cohort.size();
  const auto automatic = static_cast<std::size_t>(2 * std::ceil(std::log2(static_cast<double>(n))));
  const std::size_t k = std::min(n - 1, config_.secure.neighbours == 0 ? automatic : config_.secure.neighbours);
  const std::size_t t = std::min(k, config_.secure.threshold == 0 ? k / 2 + 1 : config_.secure.threshold);
  std::vector<SecureMember> members;
  for (const auto& device : cohort) {
    auto identity = crypto::parse_ed25519_public(device, "device key");
    if (!identity) return "secure round: " + identity.error().message;
    members.push_back({device, *identity});
  }
  // Each device's noise share. An applied round sums at least m inputs, m
  // the larger of t and min_devices (fewer abandon it), so the sum carries
  // the round's variance whatever the dropouts: calibrating to t alone would
  // put cohort/t times the noise needed into a large cohort's sum.
  const double fewest_inputs = static_cast<double>(std::max(t, config_.min_devices));
  const double share = 1 / std::sqrt(fewest_inputs);
  task.privacy.noise_stddev = round.update_noise_multiplier * clip_norm_ * share;
  task.privacy.count_noise_stddev = round.count_noise_stddev * share;
  // The range covers the update (norm C, or the per-value clamp), the weight
  // and the clip indicator (at most 1), and the noise's tails.
  const double values = clip_norm_ > 0 ? clip_norm_ : config_.secure.range;
  const double range =
      std::max(values, 1.0) + kNoiseHeadroom * std::max(task.privacy.noise_stddev, task.privacy.count_noise_stddev);
  auto scale = weights::ModularQuantizer::headroom_scale(static_cast<unsigned>(config_.secure.bits), n, range);
  if (!scale) return "secure round: " + scale.error().message;
  protocol::SecureParams params;
  random_->fill(params.nonce);
  params.threshold = t;
  params.bits = config_.secure.bits;
  params.scale = *scale;
  params.range = range;
  task.secure = params;
  round.secure_params = params;
  SecureRoundSettings settings{round.id, params, k, rng_(), global_.layout().value_count() + 2};
  settings.max_uploads = std::max<std::size_t>(1, config_.secure.upload_memory_bytes /
                                                      (settings.input_words * sizeof(std::uint32_t)));
  auto secure = SecureAggregationRound::create(settings, std::move(members));
  if (!secure) return secure.error().message;
  round.secure.emplace(std::move(secure).value());
  round.phase_deadline = round.deadline;  // devices advertise once trained
  return std::nullopt;
}

std::optional<std::string> RoundCoordinator::secure_problem(const DeviceKey& device, std::optional<std::string> problem,
                                                            Clock::time_point now) {
  if (problem) {
    if (round_) ++round_->rejected;
    refuse(device, "secure round refused", *problem);
  }
  advance_secure_if_due(now);
  return problem;
}

std::optional<std::string> RoundCoordinator::on_advertise(const DeviceKey& device, const protocol::AdvertiseKeys& message,
                                                          Clock::time_point now) {
  touch(device, now);
  if (!round_ || !round_->secure) return secure_problem(device, "no secure round is open", now);
  return secure_problem(device, round_->secure->on_advertise(device, message), now);
}

std::optional<std::string> RoundCoordinator::on_shares(const DeviceKey& device, const protocol::ShareKeys& message,
                                                       Clock::time_point now) {
  touch(device, now);
  if (!round_ || !round_->secure) return secure_problem(device, "no secure round is open", now);
  return secure_problem(device, round_->secure->on_shares(device, message), now);
}

std::optional<std::string> RoundCoordinator::on_masked_input(const DeviceKey& device, const protocol::MaskedInput& message,
                                                             std::span<const std::uint8_t> payload, Clock::time_point now) {
  touch(device, now);
  if (!round_ || !round_->secure) return secure_problem(device, "no secure round is open", now);
  if (message.round != round_->id) return secure_problem(device, "masked input for round " + std::to_string(message.round), now);
  auto problem = round_->secure->on_masked_part(device, message.offset, payload);
  if (!problem) {
    if (message.offset == 0 && round_->metrics_from.insert(device).second) {
      round_->loss_sum += message.loss_after;
      round_->accuracy_sum += message.accuracy_after;
    }
    round_->upload_deadlines[device] = now + config_.secure.phase_deadline;  // progress keeps its turn
    round_->phase_deadline = std::max(round_->phase_deadline, now + config_.secure.phase_deadline);
    send_secure(round_->secure->take_released(), now);
  }
  return secure_problem(device, problem, now);
}

std::optional<std::string> RoundCoordinator::on_unmask(const DeviceKey& device, const protocol::UnmaskResponse& message,
                                                       Clock::time_point now) {
  touch(device, now);
  if (!round_ || !round_->secure) return secure_problem(device, "no secure round is open", now);
  return secure_problem(device, round_->secure->on_unmask(device, message), now);
}

void RoundCoordinator::send_secure(std::vector<std::pair<std::string, SecureMessage>> messages, Clock::time_point now) {
  for (auto& [device, message] : messages) {
    if (std::holds_alternative<protocol::ShareBundle>(message)) {
      round_->upload_deadlines[device] = now + config_.secure.phase_deadline;
      round_->phase_deadline = std::max(round_->phase_deadline, now + config_.secure.phase_deadline);
    }
    std::visit([&, to = device](auto& m) { outbox_.push_back({to, std::move(m)}); }, message);
  }
}

void RoundCoordinator::expire_uploads(Clock::time_point now) {
  auto& deadlines = round_->upload_deadlines;
  for (auto it = deadlines.begin(); it != deadlines.end();) {
    if (now < it->second) {
      ++it;
      continue;
    }
    if (round_->secure->give_up_upload(it->first)) {
      refuse(it->first, "secure round refused",
             "no masked input part for " + std::to_string(config_.secure.phase_deadline.count()) +
                 " ms: the server stopped waiting for this device's input in round " + std::to_string(round_->id));
    }
    it = deadlines.erase(it);
  }
  send_secure(round_->secure->take_released(), now);
}

void RoundCoordinator::advance_secure_if_due(Clock::time_point now) {
  if (round_ && round_->secure && round_->secure->phase() == SecureAggregationRound::Phase::masking) expire_uploads(now);
  while (round_ && round_->secure && (round_->secure->phase_complete() || now >= round_->phase_deadline)) {
    const char* closing = timeline_name(round_->secure->phase());
    auto next = round_->secure->advance();
    round_->phases.push_back(
        {closing, std::chrono::duration<double>(now - round_->started).count(), round_->secure->live()});
    if (!next) {
      round_->abandon_reason = next.error().message;
      return close_round(now);
    }
    round_->phase_deadline = now + config_.secure.phase_deadline;
    round_->upload_deadlines.clear();
    send_secure(std::move(next).value(), now);
    if (round_->secure->phase() == SecureAggregationRound::Phase::finished) return close_round(now);
  }
}

Result<std::vector<float>> RoundCoordinator::secure_mean(double& unclipped_fraction) {
  const auto& secure = *round_->secure;
  const auto& params = round_->secure_params;
  const weights::ModularQuantizer quantizer{static_cast<unsigned>(params.bits), params.scale, params.range};
  const std::span<const std::uint32_t> sum = secure.sum();
  const std::size_t parameters = global_.layout().value_count();
  // The sum is the parameters, then the total weight and the unclipped count.
  double tail[2];
  quantizer.dequantize(sum.subspan(parameters, 2), tail);
  const double weight = tail[0];
  if (!(weight > 0)) {
    return make_error(ErrorCode::invalid_argument,
                      "the secure sum's total weight is " + std::to_string(weight) + ", not positive: nothing to average");
  }
  // Decoded a slice at a time, so no second model-sized buffer of doubles is held.
  std::vector<float> mean(parameters);
  std::vector<double> decoded(std::min<std::size_t>(parameters, 4096));
  for (std::size_t start = 0; start < parameters; start += decoded.size()) {
    const std::size_t count = std::min(decoded.size(), parameters - start);
    quantizer.dequantize(sum.subspan(start, count), std::span(decoded).first(count));
    for (std::size_t i = 0; i < count; ++i) mean[start + i] = static_cast<float>(decoded[i] / weight);
  }
  weights::scale_integer_buffers(global_.layout(), mean, weights::kSecureCountUnit);
  if (!config_.privacy.enabled()) {  // with DP every weight is 1, and the sum of samples stays unknown
    round_->samples = static_cast<std::uint64_t>(std::llround(weight * static_cast<double>(config_.secure.weight_cap)));
  }
  const auto survivors = static_cast<double>(secure.survivors());
  unclipped_fraction = (tail[1] + 0.5 * survivors) / survivors;
  return mean;
}

}  // namespace shoal::aggregator
