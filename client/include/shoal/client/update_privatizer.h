// What a device does to its update before it leaves, as the round's
// PrivacyPlan says: clip its L2 norm to C, and in secure mode weigh it and
// add the device's share of the round's Gaussian noise (distributed DP:
// each device adds variance (zC)^2 / m, m = max(t, min_devices) being the
// fewest inputs an applied round sums, so the sum of any m or more carries
// at least (zC)^2).
//
// A secure input is the update followed by two more values, summed with it
// under the masks: the device's weight (min(samples, cap) / cap, or 1 with
// uniform weights), so the server learns only the total weight, and
// "not clipped" - 1/2 (plus noise), from which the server adapts C
// (Andrew et al. 2021) without learning which devices were clipped.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shoal/protocol/round_messages.h"

namespace shoal::client {

struct PrivatizedUpdate {
  std::vector<float> values;
  double norm = 0;       // the update's L2 norm before clipping
  bool clipped = false;
};

// In place: scales `update` down to norm clip_norm when it is longer (no-op when clip_norm is 0).
PrivatizedUpdate clip_update(std::vector<float> update, double clip_norm);

// The secure input (update.size() + 2 values): clipped, weighted, noised.
// `seed` drives the noise; a device passes fresh randomness.
PrivatizedUpdate secure_input(std::vector<float> update, std::uint64_t samples, const protocol::PrivacyPlan& plan,
                              std::uint64_t seed);

}  // namespace shoal::client
