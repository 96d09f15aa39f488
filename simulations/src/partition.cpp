#include "shoal/simulations/partition.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

namespace shoal::simulations {

Result<SplitKind> parse_split(std::string_view name) {
  if (name == "iid") return SplitKind::iid;
  if (name == "dirichlet") return SplitKind::dirichlet;
  return make_error(ErrorCode::invalid_argument, "unknown split '" + std::string(name) + "' (iid or dirichlet)");
}

Partition partition_iid(std::size_t samples, std::size_t devices, std::uint64_t seed) {
  std::vector<std::size_t> order(samples);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  Partition parts(devices);
  for (std::size_t i = 0; i < samples; ++i) parts[i % devices].push_back(order[i]);
  return parts;
}

Result<Partition> partition_dirichlet(std::span<const std::int64_t> labels, std::size_t devices, double alpha,
                                      std::uint64_t seed, std::size_t min_samples) {
  if (devices == 0 || !(alpha > 0)) {
    return make_error(ErrorCode::invalid_argument, "dirichlet split: needs at least one device and alpha > 0");
  }
  std::map<std::int64_t, std::vector<std::size_t>> by_class;
  for (std::size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(i);
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gamma(alpha, 1.0);
  constexpr int kMaxDraws = 1000;
  for (int draw = 0; draw < kMaxDraws; ++draw) {
    Partition parts(devices);
    for (auto& [label, indices] : by_class) {
      std::shuffle(indices.begin(), indices.end(), rng);
      // A Dirichlet draw is independent Gamma(alpha, 1) draws, normalised.
      std::vector<double> share(devices);
      for (auto& s : share) s = gamma(rng);
      const double total = std::accumulate(share.begin(), share.end(), 0.0);
      double cumulative = 0;
      std::size_t begin = 0;
      for (std::size_t d = 0; d < devices; ++d) {
        cumulative += share[d] / total;
        const auto end = d + 1 == devices ? indices.size()
                                          : std::min(indices.size(), static_cast<std::size_t>(cumulative * indices.size()));
        parts[d].insert(parts[d].end(), indices.begin() + static_cast<std::ptrdiff_t>(begin),
                        indices.begin() + static_cast<std::ptrdiff_t>(std::max(begin, end)));
        begin = std::max(begin, end);
      }
    }
    const bool enough = std::all_of(parts.begin(), parts.end(), [&](const auto& p) { return p.size() >= min_samples; });
    if (enough) return parts;
  }
  return make_error(ErrorCode::invalid_argument,
                    "dirichlet split: no draw gave each of " + std::to_string(devices) + " devices " +
                        std::to_string(min_samples) + " samples; use fewer devices or a larger alpha");
}

}  // namespace shoal::simulations
