#include "shoal/aggregator/server_optimizer.h"

#include <cmath>

#include "enum_names.h"

namespace shoal::aggregator {
namespace {

constexpr detail::NameTable<StrategyKind, 5> kNames = {{
    {StrategyKind::fedavg, "fedavg"},
    {StrategyKind::fedavgm, "fedavgm"},
    {StrategyKind::fedadagrad, "fedadagrad"},
    {StrategyKind::fedadam, "fedadam"},
    {StrategyKind::fedyogi, "fedyogi"},
}};

bool adaptive(StrategyKind kind) {
  return kind == StrategyKind::fedadagrad || kind == StrategyKind::fedadam || kind == StrategyKind::fedyogi;
}

Error invalid(const std::string& field, const std::string& why) {
  return make_error(ErrorCode::invalid_argument, "strategy: " + field + " " + why);
}

}  // namespace

std::string_view strategy_name(StrategyKind kind) { return detail::name_of(kNames, kind); }

Result<StrategyKind> parse_strategy(std::string_view name) { return detail::parse_name(kNames, name, "strategy"); }

Status StrategyConfig::validate() const {
  if (!(server_learning_rate > 0.0f) || !std::isfinite(server_learning_rate)) {
    return invalid("server_learning_rate", "must be positive");
  }
  if (!(beta1 >= 0.0f && beta1 < 1.0f)) return invalid("beta1", "must be in [0, 1)");
  if (!(beta2 >= 0.0f && beta2 < 1.0f)) return invalid("beta2", "must be in [0, 1)");
  if (!(tau > 0.0f) || !std::isfinite(tau)) return invalid("tau", "must be positive");
  return ok_status();
}

ServerOptimizer::ServerOptimizer(const StrategyConfig& config, std::size_t parameter_count) : config_(config) {
  if (config.kind != StrategyKind::fedavg) m_.assign(parameter_count, 0.0f);
  if (adaptive(config.kind)) v_.assign(parameter_count, config.tau * config.tau);
}

Result<ServerOptimizer> ServerOptimizer::create(const StrategyConfig& config, std::size_t parameter_count) {
  if (auto status = config.validate(); !status) return status.error();
  return ServerOptimizer(config, parameter_count);
}

void ServerOptimizer::apply(std::span<const float> delta, std::span<float> x) {
  const float eta = config_.server_learning_rate;
  const float b1 = config_.beta1;
  const float b2 = config_.beta2;
  const float tau = config_.tau;
  const std::size_t n = x.size();
  switch (config_.kind) {
    case StrategyKind::fedavg:
      for (std::size_t i = 0; i < n; ++i) x[i] += eta * delta[i];
      return;
    case StrategyKind::fedavgm:
      for (std::size_t i = 0; i < n; ++i) {
        m_[i] = b1 * m_[i] + delta[i];
        x[i] += eta * m_[i];
      }
      return;
    case StrategyKind::fedadagrad:
    case StrategyKind::fedadam:
    case StrategyKind::fedyogi:
      break;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const float d = delta[i];
    const float d2 = d * d;
    m_[i] = b1 * m_[i] + (1.0f - b1) * d;
    if (config_.kind == StrategyKind::fedadagrad) {
      v_[i] += d2;
    } else if (config_.kind == StrategyKind::fedadam) {
      v_[i] = b2 * v_[i] + (1.0f - b2) * d2;
    } else {
      const float gap = v_[i] - d2;
      const float sign = gap > 0.0f ? 1.0f : (gap < 0.0f ? -1.0f : 0.0f);
      v_[i] -= (1.0f - b2) * d2 * sign;
    }
    x[i] += eta * m_[i] / (std::sqrt(v_[i]) + tau);
  }
}

Status ServerOptimizer::restore(std::vector<float> first_moment, std::vector<float> second_moment) {
  if (first_moment.size() != m_.size() || second_moment.size() != v_.size()) {
    return make_error(ErrorCode::invalid_argument,
                      "optimiser state for " + std::string(strategy_name(config_.kind)) + " needs moments of " +
                          std::to_string(m_.size()) + " and " + std::to_string(v_.size()) + " values, got " +
                          std::to_string(first_moment.size()) + " and " + std::to_string(second_moment.size()));
  }
  m_ = std::move(first_moment);
  v_ = std::move(second_moment);
  return ok_status();
}

}  // namespace shoal::aggregator
