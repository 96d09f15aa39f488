#include "shoal/simulations/fleet_model.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace shoal::simulations;

TEST_CASE("device profiles are drawn around the configured medians, the same for the same seed") {
  FleetModelConfig config;
  config.speed = 1000;
  config.speed_spread = 0.5;
  config.uplink_mbps = 8;
  const FleetModel fleet(config, 7);
  std::vector<double> speeds;
  for (std::size_t d = 0; d < 2001; ++d) speeds.push_back(fleet.profile(d).speed);
  std::sort(speeds.begin(), speeds.end());
  CHECK(speeds[1000] == Approx(1000).epsilon(0.1));  // the median
  CHECK(speeds.front() < 500);                       // spread both ways
  CHECK(speeds.back() > 2000);
  CHECK(fleet.profile(3).speed == FleetModel(config, 7).profile(3).speed);
  CHECK(fleet.profile(3).speed != FleetModel(config, 8).profile(3).speed);
  config.bandwidth_spread = 0;
  CHECK(FleetModel(config, 1).profile(5).uplink_bytes_s == Approx(1e6));  // 8 Mbit/s
}

TEST_CASE("online and offline sessions average to the configured share, and the diurnal cycle swings it") {
  FleetModelConfig config;
  config.online_share = 0.25;
  config.session_s = 600;
  const FleetModel fleet(config, 1);
  CHECK_FALSE(fleet.always_online());
  auto rng = fleet.generator(0);
  const auto profile = fleet.profile(0);
  double online = 0, offline = 0;
  for (int i = 0; i < 20000; ++i) {
    online += fleet.online_session(rng);
    offline += fleet.offline_session(profile, 0, rng);
  }
  CHECK(online / (online + offline) == Approx(0.25).epsilon(0.05));
  config.diurnal_amplitude = 0.8;
  const FleetModel daily(config, 1);
  double high = 0, low = 1;
  for (double t = 0; t < 86400; t += 3600) {
    high = std::max(high, daily.online_share_at(profile, t));
    low = std::min(low, daily.online_share_at(profile, t));
  }
  CHECK(high == Approx(0.45).epsilon(0.01));
  CHECK(low == Approx(0.05).epsilon(0.05));
  CHECK(FleetModel(FleetModelConfig{}, 1).always_online());
}

TEST_CASE("dropout chances apply phase by phase, and plain rounds have only the training phase") {
  FleetModelConfig config;
  config.dropout = {0.1, 0.2, 0.0, 0.5};
  const FleetModel fleet(config, 3);
  auto rng = fleet.generator(4);
  std::array<int, 5> counts{};
  for (int i = 0; i < 40000; ++i) ++counts[static_cast<std::size_t>(fleet.drop_phase(true, rng))];
  CHECK(counts[0] / 40000.0 == Approx(0.1).epsilon(0.1));
  CHECK(counts[1] / 40000.0 == Approx(0.9 * 0.2).epsilon(0.1));
  CHECK(counts[2] == 0);
  CHECK(counts[3] / 40000.0 == Approx(0.9 * 0.8 * 0.5).epsilon(0.1));
  for (int i = 0; i < 1000; ++i) {
    const auto phase = fleet.drop_phase(false, rng);
    CHECK((phase == DropPhase::training || phase == DropPhase::none));
  }
}

TEST_CASE("fleet model settings out of range are refused by key") {
  auto refusal = [](auto change) {
    FleetModelConfig config;
    change(config);
    auto status = config.validate();
    REQUIRE_FALSE(status);
    return status.error().message;
  };
  CHECK(refusal([](auto& c) { c.speed = -1; }) == "devices.speed must be positive (samples per second)");
  CHECK(refusal([](auto& c) { c.speed_spread = NAN; }) == "devices.speed_spread must be >= 0");
  CHECK(refusal([](auto& c) { c.downlink_mbps = 0; }) == "devices.downlink_mbps must be positive");
  CHECK(refusal([](auto& c) { c.online_share = 0; }) == "devices.online_share must be in (0, 1]");
  CHECK(refusal([](auto& c) { c.diurnal_amplitude = 2; }) == "devices.diurnal_amplitude must be in [0, 1]");
  CHECK(refusal([](auto& c) { c.eligible_share = 1.1; }) == "devices.eligible_share must be in (0, 1]");
  CHECK(refusal([](auto& c) { c.rejoin_s = 0; }) == "devices.rejoin_s must be positive");
  CHECK(refusal([](auto& c) { c.dropout[2] = 1; }) == "dropout.masking must be in [0, 1)");
  CHECK(FleetModelConfig{}.validate());
}
