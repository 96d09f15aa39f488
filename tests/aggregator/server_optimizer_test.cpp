#include "shoal/aggregator/server_optimizer.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using namespace shoal;
using namespace shoal::aggregator;
using Catch::Detail::Approx;

namespace {

StrategyConfig config(StrategyKind kind) {
  StrategyConfig c;
  c.kind = kind;
  c.server_learning_rate = 0.5f;
  c.beta1 = 0.9f;
  c.beta2 = 0.99f;
  c.tau = 0.1f;
  return c;
}

// Two steps of `kind` on a two-parameter model from x = {1, -1} with the
// updates {0.2, -0.4} then {0.2, 0.1}.
std::vector<float> two_steps(StrategyKind kind) {
  auto optimizer = ServerOptimizer::create(config(kind), 2);
  REQUIRE(optimizer);
  std::vector<float> x = {1.0f, -1.0f};
  optimizer->apply(std::vector<float>{0.2f, -0.4f}, x);
  optimizer->apply(std::vector<float>{0.2f, 0.1f}, x);
  return x;
}

// x after two adaptive steps, given v after each step; m is the same for all
// three adaptive strategies: {0.02, -0.04} then {0.038, -0.026}.
std::vector<double> adaptive_expectation(double v1a, double v1b, double v2a, double v2b) {
  return {1.0 + 0.5 * 0.02 / (std::sqrt(v1a) + 0.1) + 0.5 * 0.038 / (std::sqrt(v2a) + 0.1),
          -1.0 + 0.5 * -0.04 / (std::sqrt(v1b) + 0.1) + 0.5 * -0.026 / (std::sqrt(v2b) + 0.1)};
}

}  // namespace

// Expected values worked by hand from the update rules in server_optimizer.h
// with eta = 0.5, beta1 = 0.9, beta2 = 0.99, tau = 0.1 (v starts at 0.01).
TEST_CASE("fedavg adds eta times the mean update") {
  const auto x = two_steps(StrategyKind::fedavg);
  CHECK(x[0] == Approx(1.0 + 0.5 * 0.4));
  CHECK(x[1] == Approx(-1.0 + 0.5 * -0.3));
}

TEST_CASE("fedavgm carries momentum between rounds") {
  // m1 = {0.2, -0.4}; x1 = {1.1, -1.2}; m2 = {0.38, -0.26}; x2 = {1.29, -1.33}
  const auto x = two_steps(StrategyKind::fedavgm);
  CHECK(x[0] == Approx(1.29));
  CHECK(x[1] == Approx(-1.33));
}

TEST_CASE("fedadagrad accumulates squared updates") {
  // step 1: m = {0.02, -0.04}; v = {0.05, 0.17}
  //         x += 0.5 * m / (sqrt(v) + 0.1)
  // step 2: m = {0.038, -0.026}; v = {0.09, 0.18}
  const auto expected = adaptive_expectation(0.05, 0.17, 0.09, 0.18);
  const double x0 = expected[0], x1 = expected[1];
  const auto x = two_steps(StrategyKind::fedadagrad);
  CHECK(x[0] == Approx(x0).epsilon(1e-5));
  CHECK(x[1] == Approx(x1).epsilon(1e-5));
}

TEST_CASE("fedadam uses an exponential average of squared updates") {
  // step 1: v = 0.99 * 0.01 + 0.01 * d^2 = {0.0103, 0.0115}
  // step 2: v = {0.99 * 0.0103 + 0.01 * 0.04, 0.99 * 0.0115 + 0.01 * 0.01}
  const double v1a = 0.0103, v1b = 0.0115;
  const double v2a = 0.99 * v1a + 0.0004, v2b = 0.99 * v1b + 0.0001;
  const auto expected = adaptive_expectation(v1a, v1b, v2a, v2b);
  const double x0 = expected[0], x1 = expected[1];
  const auto x = two_steps(StrategyKind::fedadam);
  CHECK(x[0] == Approx(x0).epsilon(1e-5));
  CHECK(x[1] == Approx(x1).epsilon(1e-5));
}

TEST_CASE("fedyogi moves v towards the squared update by a fixed step") {
  // step 1: v < d^2 for both, so v += 0.01 * d^2 = {0.0104, 0.0116}
  // step 2: a: v = 0.0104 < 0.04, v += 0.0004; b: v = 0.0116 > 0.01, v -= 0.0001
  const double v1a = 0.0104, v1b = 0.0116;
  const double v2a = v1a + 0.0004, v2b = v1b - 0.0001;
  const auto expected = adaptive_expectation(v1a, v1b, v2a, v2b);
  const double x0 = expected[0], x1 = expected[1];
  const auto x = two_steps(StrategyKind::fedyogi);
  CHECK(x[0] == Approx(x0).epsilon(1e-5));
  CHECK(x[1] == Approx(x1).epsilon(1e-5));
}

TEST_CASE("restored moments continue exactly where the checkpoint left off") {
  auto straight = *ServerOptimizer::create(config(StrategyKind::fedadam), 2);
  std::vector<float> x = {1.0f, -1.0f};
  straight.apply(std::vector<float>{0.2f, -0.4f}, x);
  std::vector<float> restored_x = x;
  auto restored = *ServerOptimizer::create(config(StrategyKind::fedadam), 2);
  REQUIRE(restored.restore({straight.first_moment().begin(), straight.first_moment().end()},
                           {straight.second_moment().begin(), straight.second_moment().end()}));
  straight.apply(std::vector<float>{0.2f, 0.1f}, x);
  restored.apply(std::vector<float>{0.2f, 0.1f}, restored_x);
  CHECK(restored_x == x);
  CHECK_FALSE(restored.restore({1.0f}, {1.0f}));
}

TEST_CASE("strategy names parse and bad hyper-parameters are refused") {
  CHECK(*parse_strategy("fedyogi") == StrategyKind::fedyogi);
  auto unknown = parse_strategy("fedsgd");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message.find("known: fedavg, fedavgm") != std::string::npos);
  auto c = config(StrategyKind::fedadam);
  c.beta2 = 1.0f;
  auto refused = ServerOptimizer::create(c, 2);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("beta2") != std::string::npos);
  c = config(StrategyKind::fedavg);
  c.server_learning_rate = 0.0f;
  CHECK_FALSE(ServerOptimizer::create(c, 2));
}
