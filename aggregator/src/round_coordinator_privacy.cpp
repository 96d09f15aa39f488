// The differential-privacy side of RoundCoordinator: the clip norm and noise
// a round's devices are told to use, the budget check before a round starts,
// central noise in plain mode and the adaptive clip norm after a round.
#include "shoal/aggregator/round_coordinator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace shoal::aggregator {
namespace {

constexpr double kClipSlack = 1e-4;

std::string fixed(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", value);
  return text;
}

}  // namespace

std::optional<std::string> RoundCoordinator::plan_privacy(OpenRound& round, protocol::TrainTask& task,
                                                          std::size_t candidates) {
  const auto& privacy = config_.privacy;
  task.privacy.clip_norm = clip_norm_;
  task.privacy.weight_cap = config_.secure.weight_cap;
  task.privacy.uniform_weights = privacy.enabled();
  const auto cohort = static_cast<double>(round.cohort.size());
  round.sampling_rate = cohort / static_cast<double>(candidates);
  if (privacy.adaptive_clipping) {
    round.count_noise_stddev = privacy.clip_count_stddev > 0 ? privacy.clip_count_stddev : cohort / 20;
  }
  if (!privacy.enabled()) return std::nullopt;
  const double z = privacy.noise_multiplier;
  round.update_noise_multiplier = z;
  if (privacy.adaptive_clipping) {
    // Andrew et al. 2021: the count's noise spends part of the budget, so the
    // update's noise grows to keep the round's total at multiplier z.
    const double count_z = 2 * round.count_noise_stddev;
    if (count_z <= z) {
      return "privacy: the unclipped-count noise (stddev " + fixed(round.count_noise_stddev) +
             ") must exceed half the noise multiplier " + fixed(z) + "; raise privacy.clip_count_stddev";
    }
    round.update_noise_multiplier = 1 / std::sqrt(1 / (z * z) - 1 / (count_z * count_z));
  }
  if (privacy.epsilon_budget > 0) {
    const auto after = accountant_.spent_after(round.sampling_rate, z, 1, privacy.delta);
    if (after.epsilon > privacy.epsilon_budget) {
      return "privacy budget spent: another round would bring epsilon to " + fixed(after.epsilon) + ", the budget is " +
             fixed(privacy.epsilon_budget) + " (delta " + fixed(privacy.delta) + ")";
    }
  }
  return std::nullopt;
}

std::optional<std::string> RoundCoordinator::add_to_norm(Upload& upload, std::span<const float> part) const {
  // DP: the noise is calibrated to updates of norm C, so one device that did
  // not clip would break the guarantee for everyone; the slack covers the
  // device's float32 arithmetic. Plain mode's max_update_norm guards against
  // poisoning. Parts are checked before they are folded, so what is folded
  // of a refused update stays within the bound.
  const bool clipping = config_.privacy.enabled() && clip_norm_ > 0;
  if (!clipping && config_.max_update_norm <= 0) return std::nullopt;
  double squared_norm = upload.squared_norm;
  for (const float value : part) squared_norm += static_cast<double>(value) * value;
  if (clipping && squared_norm > std::pow(clip_norm_ * (1 + kClipSlack), 2)) {
    return "the update's L2 norm reaches " + fixed(std::sqrt(squared_norm)) + " by value " +
           std::to_string(upload.received + part.size()) + ", above the round's clip norm " + fixed(clip_norm_);
  }
  if (config_.max_update_norm > 0 && !(squared_norm <= config_.max_update_norm * config_.max_update_norm)) {
    return "the update's L2 norm reaches " + fixed(std::sqrt(squared_norm)) + " by value " +
           std::to_string(upload.received + part.size()) + ", above aggregation.max_update_norm " +
           fixed(config_.max_update_norm);
  }
  upload.squared_norm = squared_norm;
  return std::nullopt;
}

void RoundCoordinator::add_central_noise(std::vector<float>& mean, std::size_t reports) {
  // DP-FedAvg (McMahan et al. 2018): N(0, (zC)^2) on the sum of clipped updates, so (zC / reports) on their mean.
  std::normal_distribution<float> noise(
      0.0f, static_cast<float>(round_->update_noise_multiplier * clip_norm_ / static_cast<double>(reports)));
  for (auto& value : mean) value += noise(noise_rng_);
}

std::optional<PrivacyState> RoundCoordinator::privacy_state() const {
  const auto& rdp = accountant_.rdp();
  const bool spent = std::any_of(rdp.begin(), rdp.end(), [](double value) { return value > 0; });
  if (!spent && !config_.privacy.enabled() && !config_.privacy.adaptive_clipping) return std::nullopt;
  return PrivacyState{accountant_.orders(), rdp, clip_norm_};
}

Status RoundCoordinator::restore_privacy(const PrivacyState& state) {
  if (auto status = accountant_.resume(state.orders, state.rdp); !status) return status;
  // A fixed C comes from the config, so an operator can change it between runs.
  if (config_.privacy.adaptive_clipping && state.clip_norm > 0) clip_norm_ = state.clip_norm;
  return ok_status();
}

void RoundCoordinator::adapt_clip(double unclipped_fraction) {
  // Geometric update towards the target quantile of update norms.
  clip_norm_ *= std::exp(-config_.privacy.clip_learning_rate * (unclipped_fraction - config_.privacy.target_quantile));
}

}  // namespace shoal::aggregator
