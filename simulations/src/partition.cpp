#include "shoal/simulations/partition.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <string>

namespace shoal::simulations {
namespace {

Error invalid_split(const std::string& what) { return make_error(ErrorCode::invalid_argument, what); }

std::map<std::int64_t, std::vector<std::size_t>> by_class(std::span<const std::int64_t> labels) {
  std::map<std::int64_t, std::vector<std::size_t>> classes;
  for (std::size_t i = 0; i < labels.size(); ++i) classes[labels[i]].push_back(i);
  return classes;
}

// A Dirichlet(alpha) draw over `count` outcomes: independent Gamma(alpha, 1)
// draws, normalised. The distribution object carries state between draws.
std::vector<double> dirichlet_shares(std::size_t count, std::gamma_distribution<double>& gamma, std::mt19937_64& rng) {
  std::vector<double> share(count);
  for (auto& s : share) s = gamma(rng);
  const double total = std::accumulate(share.begin(), share.end(), 0.0);
  for (auto& s : share) s = total > 0 ? s / total : 1.0 / static_cast<double>(count);
  return share;
}

// The indices sorted by label; ties keep a seeded random order.
std::vector<std::size_t> sorted_by_label(std::span<const std::int64_t> labels, std::mt19937_64& rng) {
  std::vector<std::size_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return labels[a] < labels[b]; });
  return order;
}

Result<Partition> shards_without_replacement(std::span<const std::int64_t> labels, const PartitionSpec& spec) {
  const std::size_t shards = spec.devices * spec.shards_per_device;
  if (shards > labels.size()) {
    return invalid_split("fleet.devices x fleet.shards_per_device is " + std::to_string(shards) + " shards, more than the " +
                         std::to_string(labels.size()) +
                         " training samples; use fewer, or set fleet.samples_per_device to draw with replacement");
  }
  std::mt19937_64 rng(spec.seed);
  const auto order = sorted_by_label(labels, rng);
  std::vector<std::size_t> shard_ids(shards);
  std::iota(shard_ids.begin(), shard_ids.end(), 0);
  std::shuffle(shard_ids.begin(), shard_ids.end(), rng);
  Partition parts(spec.devices);
  for (std::size_t d = 0; d < spec.devices; ++d) {
    for (std::size_t k = 0; k < spec.shards_per_device; ++k) {
      const std::size_t shard = shard_ids[d * spec.shards_per_device + k];
      const std::size_t begin = shard * order.size() / shards, end = (shard + 1) * order.size() / shards;
      parts[d].insert(parts[d].end(), order.begin() + static_cast<std::ptrdiff_t>(begin),
                      order.begin() + static_cast<std::ptrdiff_t>(end));
    }
  }
  return parts;
}

Result<Partition> quantity_without_replacement(std::size_t samples, const PartitionSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<double> normal(0, 1);
  std::vector<double> weight(spec.devices);
  for (auto& w : weight) w = std::exp(spec.quantity_sigma * normal(rng));
  const double total = std::accumulate(weight.begin(), weight.end(), 0.0);
  // Every device gets its minimum, the rest is shared by weight (largest remainder).
  const std::size_t spare = samples - spec.devices * spec.min_samples;
  std::vector<std::size_t> counts(spec.devices, spec.min_samples);
  std::vector<std::pair<double, std::size_t>> remainders;
  std::size_t given = 0;
  for (std::size_t d = 0; d < spec.devices; ++d) {
    const double exact = static_cast<double>(spare) * weight[d] / total;
    const auto whole = static_cast<std::size_t>(exact);
    counts[d] += whole;
    given += whole;
    remainders.emplace_back(exact - static_cast<double>(whole), d);
  }
  std::sort(remainders.begin(), remainders.end(), std::greater<>());
  for (std::size_t i = 0; given < spare; ++i, ++given) ++counts[remainders[i].second];
  std::vector<std::size_t> order(samples);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  Partition parts(spec.devices);
  std::size_t next = 0;
  for (std::size_t d = 0; d < spec.devices; ++d) {
    parts[d].assign(order.begin() + static_cast<std::ptrdiff_t>(next),
                    order.begin() + static_cast<std::ptrdiff_t>(next + counts[d]));
    next += counts[d];
  }
  return parts;
}

Partition with_replacement(std::span<const std::int64_t> labels, const PartitionSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  const std::size_t n = spec.samples_per_device;
  std::uniform_int_distribution<std::size_t> any(0, labels.size() - 1);
  Partition parts(spec.devices);
  switch (spec.split) {
    case SplitKind::iid:
      for (auto& part : parts) {
        part.resize(n);
        for (auto& index : part) index = any(rng);
      }
      break;
    case SplitKind::dirichlet: {
      const auto classes = by_class(labels);
      std::vector<const std::vector<std::size_t>*> members;
      for (const auto& [label, indices] : classes) members.push_back(&indices);
      std::gamma_distribution<double> gamma(spec.alpha, 1.0);
      for (auto& part : parts) {
        const auto share = dirichlet_shares(members.size(), gamma, rng);
        std::discrete_distribution<std::size_t> pick_class(share.begin(), share.end());
        part.resize(n);
        for (auto& index : part) {
          const auto& pool = *members[pick_class(rng)];
          index = pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)];
        }
      }
      break;
    }
    case SplitKind::shards: {
      const auto order = sorted_by_label(labels, rng);
      const std::size_t length = std::max<std::size_t>(1, n / spec.shards_per_device);
      for (auto& part : parts) {
        for (std::size_t k = 0; k < spec.shards_per_device; ++k) {
          const std::size_t start = any(rng);
          for (std::size_t i = 0; i < length; ++i) part.push_back(order[(start + i) % order.size()]);
        }
      }
      break;
    }
    case SplitKind::quantity: {
      // Log-normal counts with mean n: exp(sigma z - sigma^2 / 2) has mean 1.
      std::normal_distribution<double> normal(0, 1);
      const double sigma = spec.quantity_sigma;
      for (auto& part : parts) {
        const double count = static_cast<double>(n) * std::exp(sigma * normal(rng) - sigma * sigma / 2);
        part.resize(std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(count))));
        for (auto& index : part) index = any(rng);
      }
      break;
    }
  }
  return parts;
}

}  // namespace

Result<SplitKind> parse_split(std::string_view name) {
  for (auto kind : {SplitKind::iid, SplitKind::dirichlet, SplitKind::shards, SplitKind::quantity}) {
    if (name == split_name(kind)) return kind;
  }
  return make_error(ErrorCode::invalid_argument,
                    "unknown split '" + std::string(name) + "' (iid, dirichlet, shards or quantity)");
}

const char* split_name(SplitKind kind) {
  switch (kind) {
    case SplitKind::iid: return "iid";
    case SplitKind::dirichlet: return "dirichlet";
    case SplitKind::shards: return "shards";
    case SplitKind::quantity: return "quantity";
  }
  return "?";
}

Result<Partition> partition(std::span<const std::int64_t> labels, const PartitionSpec& spec) {
  if (spec.devices == 0) return invalid_split("fleet.devices must be at least 1");
  if (labels.empty()) return invalid_split("the training set is empty");
  if (spec.split == SplitKind::dirichlet && !(spec.alpha > 0 && std::isfinite(spec.alpha))) {
    return invalid_split("fleet.alpha must be positive");
  }
  if (spec.split == SplitKind::shards && spec.shards_per_device == 0) {
    return invalid_split("fleet.shards_per_device must be at least 1");
  }
  if (spec.split == SplitKind::quantity && !(spec.quantity_sigma >= 0 && std::isfinite(spec.quantity_sigma))) {
    return invalid_split("fleet.quantity_sigma must be >= 0");
  }
  if (spec.samples_per_device > 0) return with_replacement(labels, spec);
  if (spec.devices * std::max<std::size_t>(spec.min_samples, 1) > labels.size()) {
    return invalid_split("fleet.devices is " + std::to_string(spec.devices) + ", but the " + std::to_string(labels.size()) +
                         " training samples cannot give each device " + std::to_string(std::max<std::size_t>(spec.min_samples, 1)) +
                         "; use fewer devices, or set fleet.samples_per_device to draw with replacement");
  }
  switch (spec.split) {
    case SplitKind::iid: return partition_iid(labels.size(), spec.devices, spec.seed);
    case SplitKind::dirichlet:
      return partition_dirichlet(labels, spec.devices, spec.alpha, spec.seed, std::max<std::size_t>(spec.min_samples, 1));
    case SplitKind::shards: return shards_without_replacement(labels, spec);
    case SplitKind::quantity: return quantity_without_replacement(labels.size(), spec);
  }
  return invalid_split("unknown split");
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
  auto classes = by_class(labels);
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gamma(alpha, 1.0);
  constexpr int kMaxDraws = 1000;
  for (int draw = 0; draw < kMaxDraws; ++draw) {
    Partition parts(devices);
    for (auto& [label, indices] : classes) {
      std::shuffle(indices.begin(), indices.end(), rng);
      const auto share = dirichlet_shares(devices, gamma, rng);
      double cumulative = 0;
      std::size_t begin = 0;
      for (std::size_t d = 0; d < devices; ++d) {
        cumulative += share[d];
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
