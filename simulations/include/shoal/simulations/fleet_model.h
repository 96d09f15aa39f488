// Fleet models: how fast, how connected and how available each simulated
// device is, and where it vanishes from rounds. Each device's profile is
// drawn once from the configured distributions, seeded by the fleet's seed
// and the device's number, so the same config gives the same fleet.
//
//   compute       samples per second a device trains (log-normal: median, spread)
//   links         uplink and downlink bandwidth (log-normal) and a latency;
//                 a message takes latency + size / bandwidth, and a link
//                 carries one message at a time
//   availability  a device alternates online and offline sessions
//                 (exponential lengths) so that it is online `online_share`
//                 of the time, optionally more by day and less by night in
//                 its own time zone (a 24 h cycle of `diurnal_amplitude`)
//   eligibility   each online session the device may train (charging, idle)
//                 with chance `eligible_share`, and says so in its hello
//   dropout       a device picked for a round vanishes (goes offline) with a
//                 chance per phase: while training, or before sharing keys,
//                 sending its masked input or unmasking (secure rounds)
#pragma once

#include <array>
#include <cstdint>

#include "shoal/base/result.h"

namespace shoal::simulations {

// A small, fast generator for a device's own draws (SplitMix64, Steele et
// al. 2014): eight bytes of state, so a hundred thousand devices can each
// have one. Not for secrets.
class DeviceRng {
 public:
  using result_type = std::uint64_t;
  explicit DeviceRng(std::uint64_t seed = 0) : state_(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  result_type operator()() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

// Where in a round a device may vanish (in order).
enum class DropPhase : std::uint8_t { training, sharing, masking, unmasking, none };
inline constexpr std::size_t kDropPhases = 4;
const char* drop_phase_name(DropPhase phase);

struct FleetModelConfig {
  double speed = 2000;           // devices.speed: median samples/s
  double speed_spread = 0.5;     // devices.speed_spread: sigma of ln(speed)
  double uplink_mbps = 10;       // devices.uplink_mbps: median
  double downlink_mbps = 50;     // devices.downlink_mbps: median
  double bandwidth_spread = 0.5; // devices.bandwidth_spread: sigma of ln(bandwidth)
  double latency_ms = 50;        // devices.latency_ms, each way
  double online_share = 1.0;     // devices.online_share, in (0, 1]
  double session_s = 3600;       // devices.session_s: mean online session
  double diurnal_amplitude = 0;  // devices.diurnal_amplitude, in [0, 1]
  double eligible_share = 1.0;   // devices.eligible_share, in (0, 1]
  double rejoin_s = 30;          // devices.rejoin_s: mean time a device that vanished from a round stays away
  // Chance of vanishing in each DropPhase (given the device got there).
  std::array<double, kDropPhases> dropout{};

  // Errors name the key (devices.speed, dropout.sharing, ...).
  Status validate() const;
};

// One device's draw from the fleet model.
struct DeviceProfile {
  float speed = 0;             // samples/s
  float uplink_bytes_s = 0;    // bytes/s
  float downlink_bytes_s = 0;  // bytes/s
  float latency_s = 0;
  float time_zone_s = 0;       // where its day starts, for the diurnal cycle
};

class FleetModel {
 public:
  FleetModel(const FleetModelConfig& config, std::uint64_t seed) : config_(config), seed_(seed) {}

  const FleetModelConfig& config() const { return config_; }
  DeviceProfile profile(std::size_t device) const;
  // Devices are always online: no sessions to simulate.
  bool always_online() const { return config_.online_share >= 1 && config_.diurnal_amplitude == 0; }
  // The share of time online at virtual time `t` (seconds) for `profile`.
  double online_share_at(const DeviceProfile& profile, double t) const;
  // The generator of device `device`'s own draws.
  DeviceRng generator(std::size_t device) const;
  // Draws for device decisions, in seconds; each device has its own generator.
  double online_session(DeviceRng& rng) const;
  double offline_session(const DeviceProfile& profile, double t, DeviceRng& rng) const;
  // How long a device that vanished from a round stays away: on average
  // rejoin_s, or an offline session's mean if that is longer.
  double rejoin_after(const DeviceProfile& profile, double t, DeviceRng& rng) const;
  bool eligible(DeviceRng& rng) const;
  // Where, if anywhere, a device picked for a round vanishes in it.
  DropPhase drop_phase(bool secure, DeviceRng& rng) const;

 private:
  FleetModelConfig config_;
  std::uint64_t seed_;
};

}  // namespace shoal::simulations
