// Privacy accounting for differentially private rounds: Rényi DP of the
// sampled Gaussian mechanism (Mironov, Talwar and Zhang 2019), summed over
// rounds, converted to (ε, δ).
//
// A round that samples a fraction q of the fleet and adds Gaussian noise of
// standard deviation z·C to updates clipped to norm C is one step at noise
// multiplier z. RDP composes by addition, order by order, over the standard
// orders 1.1 .. 10.9 and 12 .. 63; ε is the smallest over the orders of the
// classic conversion ε = rdp − log δ / (α − 1), or the improved one (Balle et
// al. 2020, as TensorFlow Privacy computes it), which is never larger.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::aggregator {

std::vector<double> default_rdp_orders();

// RDP at order `alpha` (> 1) of one step of the sampled Gaussian mechanism.
// REQUIRES: 0 <= q <= 1, noise_multiplier > 0; else std::invalid_argument.
double sampled_gaussian_rdp(double q, double noise_multiplier, double alpha);

enum class RdpConversion { classic, improved };

struct PrivacySpent {
  double epsilon = 0;
  double order = 0;  // the order that gave it
};

// The smallest ε over `orders` for RDP values `rdp`. REQUIRES: 0 < delta < 1, equal sizes.
PrivacySpent epsilon_from_rdp(std::span<const double> orders, std::span<const double> rdp, double delta,
                              RdpConversion conversion = RdpConversion::improved);

class RdpAccountant {
 public:
  explicit RdpAccountant(std::vector<double> orders = default_rdp_orders());

  // Records `steps` steps at sampling rate q and noise multiplier z.
  void add_steps(double q, double noise_multiplier, std::uint64_t steps);
  PrivacySpent spent(double delta, RdpConversion conversion = RdpConversion::improved) const;
  // What spent() would say after `steps` more such steps, recording nothing:
  // the check that refuses a round that would overrun the budget.
  PrivacySpent spent_after(double q, double noise_multiplier, std::uint64_t steps, double delta,
                           RdpConversion conversion = RdpConversion::improved) const;

  // Continues from RDP spent before (a checkpoint's). Fails, changing
  // nothing, when `orders` are not this accountant's.
  Status resume(std::span<const double> orders, std::span<const double> rdp);

  const std::vector<double>& orders() const { return orders_; }
  const std::vector<double>& rdp() const { return rdp_; }

 private:
  std::vector<double> orders_;
  std::vector<double> rdp_;
};

}  // namespace shoal::aggregator
