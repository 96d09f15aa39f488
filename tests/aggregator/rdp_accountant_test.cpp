#include "shoal/aggregator/rdp_accountant.h"

#include <catch2/catch.hpp>

using namespace shoal::aggregator;

TEST_CASE("the sampled Gaussian RDP reproduces TensorFlow Privacy's reference values") {
  CHECK(10 * sampled_gaussian_rdp(0.1, 2, 5) == Approx(0.07737).epsilon(1e-3));

  RdpAccountant accountant;
  accountant.add_steps(0.01, 1.1, 10'000);
  CHECK(accountant.spent(1e-5, RdpConversion::classic).epsilon == Approx(6.28).epsilon(1e-3));
  CHECK(accountant.spent(1e-5, RdpConversion::improved).epsilon == Approx(5.63).epsilon(1e-3));
}

TEST_CASE("RDP edge cases: no sampling costs nothing, full sampling is the plain Gaussian mechanism") {
  for (double alpha : {1.5, 2.0, 7.3, 32.0}) {
    CHECK(sampled_gaussian_rdp(0, 1.1, alpha) == 0);
    CHECK(sampled_gaussian_rdp(1, 2, alpha) == Approx(alpha / 8));
  }
  // Fractional and integer orders agree where they meet.
  CHECK(sampled_gaussian_rdp(0.05, 1.3, 3.0000001) == Approx(sampled_gaussian_rdp(0.05, 1.3, 3)).epsilon(1e-5));
  CHECK_THROWS_AS(sampled_gaussian_rdp(1.5, 1, 2), std::invalid_argument);
  CHECK_THROWS_AS(sampled_gaussian_rdp(0.1, 0, 2), std::invalid_argument);
}

TEST_CASE("the accountant composes steps by addition and can look ahead without recording") {
  RdpAccountant once, twice;
  once.add_steps(0.02, 1.0, 200);
  twice.add_steps(0.02, 1.0, 100);
  const auto ahead = twice.spent_after(0.02, 1.0, 100, 1e-5);
  CHECK(twice.spent(1e-5).epsilon < ahead.epsilon);  // looking ahead recorded nothing
  twice.add_steps(0.02, 1.0, 100);
  for (std::size_t k = 0; k < once.rdp().size(); ++k) CHECK(twice.rdp()[k] == Approx(once.rdp()[k]));
  CHECK(twice.spent(1e-5).epsilon == Approx(ahead.epsilon));
  CHECK(once.spent(1e-5, RdpConversion::improved).epsilon <= once.spent(1e-5, RdpConversion::classic).epsilon);
  CHECK(default_rdp_orders().size() == 99 + 52);
}
