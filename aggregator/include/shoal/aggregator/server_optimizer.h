// Server optimisers: how the aggregator turns a round's mean update into the
// next global model. With Δ the sample-weighted mean of the devices'
// updates (local - global) and x the global weights, per coordinate:
//
//   fedavg      x += η Δ                                   (McMahan et al. 2017)
//   fedavgm     m = β1 m + Δ;            x += η m          (Hsu et al. 2019)
//   fedadagrad  m = β1 m + (1-β1) Δ;  v = v + Δ²;           x += η m / (√v + τ)
//   fedadam     m = β1 m + (1-β1) Δ;  v = β2 v + (1-β2) Δ²; x += η m / (√v + τ)
//   fedyogi     m = β1 m + (1-β1) Δ;  v = v - (1-β2) Δ² sign(v - Δ²);
//                                                           x += η m / (√v + τ)
//
// The adaptive three follow Reddi et al. 2021 ("Adaptive Federated
// Optimization", Algorithm 2): no bias correction, v starts at τ².
// FedProx is a client-side change (the proximal term in local training) and
// aggregates with fedavg.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::aggregator {

enum class StrategyKind { fedavg, fedavgm, fedadagrad, fedadam, fedyogi };

std::string_view strategy_name(StrategyKind kind);
// "fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi"; an unknown name
// is an error listing these.
Result<StrategyKind> parse_strategy(std::string_view name);

struct StrategyConfig {
  StrategyKind kind = StrategyKind::fedavg;
  float server_learning_rate = 1.0f;  // η
  float beta1 = 0.9f;                 // momentum (fedavgm) or first-moment decay
  float beta2 = 0.99f;                // second-moment decay (fedadam, fedyogi)
  float tau = 1e-3f;                  // adaptivity: larger is closer to SGD

  // Errors name the first field out of range.
  Status validate() const;
};

class ServerOptimizer {
 public:
  // Fails if the config is invalid.
  static Result<ServerOptimizer> create(const StrategyConfig& config, std::size_t parameter_count);

  // Moves `global` one step along `mean_update`. REQUIRES both to have the
  // optimiser's parameter count.
  void apply(std::span<const float> mean_update, std::span<float> global);
  // The first coordinate that apply() would make non-finite, if any; changes
  // nothing (a round checks this before it applies anything).
  std::optional<std::size_t> first_non_finite_step(std::span<const float> mean_update,
                                                   std::span<const float> global) const;

  const StrategyConfig& config() const { return config_; }
  // State to checkpoint: the first and second moments (empty when the
  // strategy has none).
  std::span<const float> first_moment() const { return m_; }
  std::span<const float> second_moment() const { return v_; }
  // Restores checkpointed moments; fails if their sizes do not match.
  Status restore(std::vector<float> first_moment, std::vector<float> second_moment);

 private:
  ServerOptimizer(const StrategyConfig& config, std::size_t parameter_count);

  StrategyConfig config_;
  std::vector<float> m_;
  std::vector<float> v_;
};

}  // namespace shoal::aggregator
