#include "shoal/aggregator/server_optimizer.h"

#include <algorithm>
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

namespace {

// One step of `config`'s strategy over x, with moments m and v (empty when
// the strategy has none) for the same coordinates.
void step(const StrategyConfig& config, std::span<const float> delta, std::span<float> x, std::span<float> m,
          std::span<float> v) {
  const float eta = config.server_learning_rate;
  const float b1 = config.beta1;
  const float b2 = config.beta2;
  const float tau = config.tau;
  const std::size_t n = x.size();
  switch (config.kind) {
    case StrategyKind::fedavg:
      for (std::size_t i = 0; i < n; ++i) x[i] += eta * delta[i];
      return;
    case StrategyKind::fedavgm:
      for (std::size_t i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + delta[i];
        x[i] += eta * m[i];
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
    m[i] = b1 * m[i] + (1.0f - b1) * d;
    if (config.kind == StrategyKind::fedadagrad) {
      v[i] += d2;
    } else if (config.kind == StrategyKind::fedadam) {
      v[i] = b2 * v[i] + (1.0f - b2) * d2;
    } else {
      const float gap = v[i] - d2;
      const float sign = gap > 0.0f ? 1.0f : (gap < 0.0f ? -1.0f : 0.0f);
      v[i] -= (1.0f - b2) * d2 * sign;
    }
    x[i] += eta * m[i] / (std::sqrt(v[i]) + tau);
  }
}

}  // namespace

void ServerOptimizer::apply(std::span<const float> delta, std::span<float> x) { step(config_, delta, x, m_, v_); }

std::optional<std::size_t> ServerOptimizer::first_non_finite_step(std::span<const float> delta,
                                                                  std::span<const float> x) const {
  // Chunk by chunk on copies, so the check costs no model-sized buffer.
  constexpr std::size_t kChunk = 4096;
  std::vector<float> xs, ms, vs;
  for (std::size_t start = 0; start < x.size(); start += kChunk) {
    const std::size_t n = std::min(kChunk, x.size() - start);
    xs.assign(x.begin() + start, x.begin() + start + n);
    if (!m_.empty()) ms.assign(m_.begin() + start, m_.begin() + start + n);
    if (!v_.empty()) vs.assign(v_.begin() + start, v_.begin() + start + n);
    step(config_, delta.subspan(start, n), xs, ms, vs);
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(xs[i])) return start + i;
    }
  }
  return std::nullopt;
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
