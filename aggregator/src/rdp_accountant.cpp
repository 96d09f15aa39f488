#include "shoal/aggregator/rdp_accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

namespace shoal::aggregator {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log(exp(a) + exp(b)) and log(exp(a) - exp(b)), without overflow.
double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  return std::max(a, b) + std::log1p(std::exp(-std::fabs(a - b)));
}

double log_sub(double a, double b) {
  if (b == -kInf) return a;
  if (a == b) return -kInf;
  return std::log(std::expm1(a - b)) + b;
}

// log(erfc(x)); an asymptotic series where erfc underflows.
double log_erfc(double x) {
  const double r = std::erfc(x);
  if (r > 0) return std::log(r);
  return -std::log(std::numbers::pi) / 2 - std::log(x) - x * x - 0.5 / (x * x) + 0.625 / std::pow(x, 4) -
         37.0 / 24.0 / std::pow(x, 6) + 353.0 / 64.0 / std::pow(x, 8);
}

// log(A_alpha) for integer alpha: a finite binomial sum.
double log_a_integer(double q, double sigma, int alpha) {
  double log_a = -kInf;
  for (int i = 0; i <= alpha; ++i) {
    const double log_coef = std::lgamma(alpha + 1.0) - std::lgamma(i + 1.0) - std::lgamma(alpha - i + 1.0) +
                            i * std::log(q) + (alpha - i) * std::log1p(-q);
    log_a = log_add(log_a, log_coef + (static_cast<double>(i) * i - i) / (2 * sigma * sigma));
  }
  return log_a;
}

// log(A_alpha) for fractional alpha: two series, summed until their terms vanish.
double log_a_fractional(double q, double sigma, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  double coef = 1;  // binomial(alpha, i), built term by term; its sign alternates past alpha
  for (int i = 0;; ++i) {
    const double log_coef = std::log(std::fabs(coef));
    const double j = alpha - i;
    const double log_t0 = log_coef + i * std::log(q) + j * std::log1p(-q);
    const double log_t1 = log_coef + j * std::log(q) + i * std::log1p(-q);
    const double log_e0 = std::log(0.5) + log_erfc((i - z0) / (std::sqrt(2.0) * sigma));
    const double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (std::sqrt(2.0) * sigma));
    const double log_s0 = log_t0 + (static_cast<double>(i) * i - i) / (2 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
    if (coef > 0) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    coef *= (alpha - i) / (i + 1);
    if (std::max(log_s0, log_s1) < -30) break;
  }
  return log_add(log_a0, log_a1);
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("RDP accountant: " + what);
}

}  // namespace

std::vector<double> default_rdp_orders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1 + x / 10.0);
  for (int alpha = 12; alpha < 64; ++alpha) orders.push_back(alpha);
  return orders;
}

double sampled_gaussian_rdp(double q, double noise_multiplier, double alpha) {
  require(q >= 0 && q <= 1, "the sampling rate must be in [0, 1]");
  require(noise_multiplier > 0, "the noise multiplier must be positive");
  require(alpha > 1, "orders must be above 1");
  if (q == 0) return 0;
  if (q == 1) return alpha / (2 * noise_multiplier * noise_multiplier);
  const double log_a = alpha == std::floor(alpha) ? log_a_integer(q, noise_multiplier, static_cast<int>(alpha))
                                                  : log_a_fractional(q, noise_multiplier, alpha);
  return log_a / (alpha - 1);
}

PrivacySpent epsilon_from_rdp(std::span<const double> orders, std::span<const double> rdp, double delta,
                              RdpConversion conversion) {
  require(delta > 0 && delta < 1, "delta must be in (0, 1)");
  require(orders.size() == rdp.size() && !orders.empty(), "one RDP value per order");
  PrivacySpent best{kInf, 0};
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const double alpha = orders[k];
    const double epsilon = conversion == RdpConversion::classic
                               ? rdp[k] - std::log(delta) / (alpha - 1)
                               : rdp[k] - (std::log(delta) + std::log(alpha)) / (alpha - 1) + std::log((alpha - 1) / alpha);
    if (epsilon < best.epsilon) best = {epsilon, alpha};
  }
  best.epsilon = std::max(0.0, best.epsilon);
  return best;
}

RdpAccountant::RdpAccountant(std::vector<double> orders) : orders_(std::move(orders)), rdp_(orders_.size(), 0.0) {}

void RdpAccountant::add_steps(double q, double noise_multiplier, std::uint64_t steps) {
  for (std::size_t k = 0; k < orders_.size(); ++k) {
    rdp_[k] += static_cast<double>(steps) * sampled_gaussian_rdp(q, noise_multiplier, orders_[k]);
  }
}

Status RdpAccountant::resume(std::span<const double> orders, std::span<const double> rdp) {
  if (!std::equal(orders.begin(), orders.end(), orders_.begin(), orders_.end()) || rdp.size() != orders_.size()) {
    return make_error(ErrorCode::invalid_argument,
                      "the privacy spent was accounted at " + std::to_string(orders.size()) +
                          " RDP orders that are not this accountant's " + std::to_string(orders_.size()));
  }
  rdp_.assign(rdp.begin(), rdp.end());
  return ok_status();
}

PrivacySpent RdpAccountant::spent(double delta, RdpConversion conversion) const {
  return epsilon_from_rdp(orders_, rdp_, delta, conversion);
}

PrivacySpent RdpAccountant::spent_after(double q, double noise_multiplier, std::uint64_t steps, double delta,
                                        RdpConversion conversion) const {
  RdpAccountant after = *this;
  after.add_steps(q, noise_multiplier, steps);
  return after.spent(delta, conversion);
}

}  // namespace shoal::aggregator
