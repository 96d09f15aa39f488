#include "shoal/client/update_privatizer.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "shoal/weights/vector_ops.h"

namespace shoal::client {

PrivatizedUpdate clip_update(std::vector<float> update, double clip_norm) {
  PrivatizedUpdate out;
  out.norm = weights::l2_norm(update);
  if (clip_norm > 0 && out.norm > clip_norm) {
    weights::scale(static_cast<float>(clip_norm / out.norm), update);
    out.clipped = true;
  }
  out.values = std::move(update);
  return out;
}

PrivatizedUpdate secure_input(std::vector<float> update, std::uint64_t samples, const protocol::PrivacyPlan& plan,
                              std::uint64_t seed) {
  auto out = clip_update(std::move(update), plan.clip_norm);
  const double weight = plan.uniform_weights ? 1.0
                                             : static_cast<double>(std::min(samples, plan.weight_cap)) /
                                                   static_cast<double>(plan.weight_cap);
  weights::scale(static_cast<float>(weight), out.values);
  std::mt19937_64 generator(seed);
  if (plan.noise_stddev > 0) {
    std::normal_distribution<float> noise(0.0f, static_cast<float>(plan.noise_stddev));
    for (auto& value : out.values) value += noise(generator);
  }
  out.values.push_back(static_cast<float>(weight));
  double indicator = (out.clipped ? 0.0 : 1.0) - 0.5;
  if (plan.count_noise_stddev > 0) indicator += std::normal_distribution<double>(0, plan.count_noise_stddev)(generator);
  out.values.push_back(static_cast<float>(indicator));
  return out;
}

}  // namespace shoal::client
