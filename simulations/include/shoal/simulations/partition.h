// How a simulated fleet's data is split across devices.
//
//   iid        a seeded shuffle cut into equal parts: every device sees every class
//   dirichlet  label skew after Hsu et al. 2019: for each class, the shares of
//              the devices are drawn from Dirichlet(alpha); small alpha gives
//              devices a few dominant classes, large alpha approaches iid
//
// Every sample goes to exactly one device. The same inputs and seed give the
// same split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "shoal/crypto/result.h"

namespace shoal::simulations {

enum class SplitKind { iid, dirichlet };

Result<SplitKind> parse_split(std::string_view name);

// The sample indices of each device.
using Partition = std::vector<std::vector<std::size_t>>;

Partition partition_iid(std::size_t samples, std::size_t devices, std::uint64_t seed);

// Redraws (up to a bound) until every device holds at least `min_samples`;
// fails if that cannot be reached.
Result<Partition> partition_dirichlet(std::span<const std::int64_t> labels, std::size_t devices, double alpha,
                                      std::uint64_t seed, std::size_t min_samples = 10);

}  // namespace shoal::simulations
