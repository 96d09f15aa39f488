// How a simulated fleet's data is split across devices.
//
//   iid        a seeded shuffle cut into equal parts: every device sees every class
//   dirichlet  label skew after Hsu et al. 2019: for each class, the shares of
//              the devices are drawn from Dirichlet(alpha); small alpha gives
//              devices a few dominant classes, large alpha approaches iid
//   shards     pathological label skew after McMahan et al. 2017: the samples
//              sorted by label are cut into devices x k shards, and each
//              device gets k of them, so it sees at most k classes
//   quantity   quantity skew: the devices' sample counts are log-normal with
//              spread sigma (their labels iid), a few devices holding most data
//
// Without replacement (PartitionSpec::samples_per_device = 0) every sample
// goes to exactly one device. With samples_per_device = N each device draws
// its samples with replacement (N each; a mean of N under quantity skew),
// following the same skew, so a fleet can be larger than the dataset; its
// devices then share samples, and the fleet holds no more distinct data
// than the dataset does. The same inputs and seed give the same split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::simulations {

enum class SplitKind { iid, dirichlet, shards, quantity };

Result<SplitKind> parse_split(std::string_view name);
const char* split_name(SplitKind kind);

// The sample indices of each device.
using Partition = std::vector<std::vector<std::size_t>>;

struct PartitionSpec {
  SplitKind split = SplitKind::iid;
  std::size_t devices = 1;
  double alpha = 0.5;                  // dirichlet
  std::size_t shards_per_device = 2;   // shards
  double quantity_sigma = 1.0;         // quantity
  std::size_t samples_per_device = 0;  // 0: without replacement
  std::size_t min_samples = 1;         // fewest samples a device may hold (without replacement)
  std::uint64_t seed = 0;
};

// Splits samples with `labels` as `spec` says. Errors name the setting
// that cannot be met (too many devices or shards for the data, a
// parameter out of range), in the config's key names (fleet.*).
Result<Partition> partition(std::span<const std::int64_t> labels, const PartitionSpec& spec);

Partition partition_iid(std::size_t samples, std::size_t devices, std::uint64_t seed);

// Redraws (up to a bound) until every device holds at least `min_samples`;
// fails if that cannot be reached.
Result<Partition> partition_dirichlet(std::span<const std::int64_t> labels, std::size_t devices, double alpha,
                                      std::uint64_t seed, std::size_t min_samples = 10);

}  // namespace shoal::simulations
