#include "shoal/simulations/fleet_model.h"

#include <cmath>
#include <algorithm>
#include <numbers>
#include <random>
#include <string>

namespace shoal::simulations {
namespace {

constexpr double kDay = 86400;
constexpr double kMinimumShare = 0.01;  // the diurnal trough never takes a device offline for good

Error invalid(const std::string& key, const std::string& rule) {
  return make_error(ErrorCode::invalid_argument, key + " " + rule);
}

bool positive(double value) { return value > 0 && std::isfinite(value); }
bool non_negative(double value) { return value >= 0 && std::isfinite(value); }

// A log-normal draw with the given median and sigma of its logarithm.
template <typename Rng>
double log_normal(double median, double sigma, Rng& rng) {
  return median * std::exp(sigma * std::normal_distribution<double>(0, 1)(rng));
}

// Independent seeds for each device and purpose: SplitMix64 outputs hash their inputs.
std::uint64_t device_seed(std::uint64_t seed, std::size_t device, std::uint64_t purpose) {
  const std::uint64_t fleet = DeviceRng(seed)();
  return DeviceRng(fleet ^ (purpose << 56) ^ static_cast<std::uint64_t>(device))();
}

}  // namespace

const char* drop_phase_name(DropPhase phase) {
  switch (phase) {
    case DropPhase::training: return "training";
    case DropPhase::sharing: return "sharing";
    case DropPhase::masking: return "masking";
    case DropPhase::unmasking: return "unmasking";
    case DropPhase::none: return "none";
  }
  return "?";
}

Status FleetModelConfig::validate() const {
  if (!positive(speed)) return invalid("devices.speed", "must be positive (samples per second)");
  if (!non_negative(speed_spread)) return invalid("devices.speed_spread", "must be >= 0");
  if (!positive(uplink_mbps)) return invalid("devices.uplink_mbps", "must be positive");
  if (!positive(downlink_mbps)) return invalid("devices.downlink_mbps", "must be positive");
  if (!non_negative(bandwidth_spread)) return invalid("devices.bandwidth_spread", "must be >= 0");
  if (!non_negative(latency_ms)) return invalid("devices.latency_ms", "must be >= 0");
  if (!(online_share > 0 && online_share <= 1)) return invalid("devices.online_share", "must be in (0, 1]");
  if (!positive(session_s)) return invalid("devices.session_s", "must be positive");
  if (!(diurnal_amplitude >= 0 && diurnal_amplitude <= 1)) return invalid("devices.diurnal_amplitude", "must be in [0, 1]");
  if (!(eligible_share > 0 && eligible_share <= 1)) return invalid("devices.eligible_share", "must be in (0, 1]");
  if (!positive(rejoin_s)) return invalid("devices.rejoin_s", "must be positive");
  for (std::size_t phase = 0; phase < kDropPhases; ++phase) {
    if (!(dropout[phase] >= 0 && dropout[phase] < 1)) {
      return invalid(std::string("dropout.") + drop_phase_name(static_cast<DropPhase>(phase)), "must be in [0, 1)");
    }
  }
  return ok_status();
}

DeviceProfile FleetModel::profile(std::size_t device) const {
  DeviceRng rng(device_seed(seed_, device, 1));
  DeviceProfile profile;
  profile.speed = static_cast<float>(log_normal(config_.speed, config_.speed_spread, rng));
  profile.uplink_bytes_s = static_cast<float>(log_normal(config_.uplink_mbps, config_.bandwidth_spread, rng) * 1e6 / 8);
  profile.downlink_bytes_s =
      static_cast<float>(log_normal(config_.downlink_mbps, config_.bandwidth_spread, rng) * 1e6 / 8);
  profile.latency_s = static_cast<float>(config_.latency_ms / 1000);
  profile.time_zone_s = static_cast<float>(std::uniform_real_distribution<double>(0, kDay)(rng));
  return profile;
}

double FleetModel::online_share_at(const DeviceProfile& profile, double t) const {
  const double cycle = std::cos(2 * std::numbers::pi * (t + profile.time_zone_s) / kDay);
  return std::clamp(config_.online_share * (1 + config_.diurnal_amplitude * cycle), kMinimumShare, 1.0);
}

DeviceRng FleetModel::generator(std::size_t device) const { return DeviceRng(device_seed(seed_, device, 2)); }

double FleetModel::online_session(DeviceRng& rng) const {
  return std::exponential_distribution<double>(1 / config_.session_s)(rng);
}

double FleetModel::offline_session(const DeviceProfile& profile, double t, DeviceRng& rng) const {
  // Online a share s of the time: offline sessions average session_s * (1 - s) / s.
  const double share = online_share_at(profile, t);
  if (share >= 1) return 0;
  return std::exponential_distribution<double>(share / (config_.session_s * (1 - share)))(rng);
}

double FleetModel::rejoin_after(const DeviceProfile& profile, double t, DeviceRng& rng) const {
  const double share = online_share_at(profile, t);
  const double mean_offline = share >= 1 ? 0 : config_.session_s * (1 - share) / share;
  return std::exponential_distribution<double>(1 / std::max(mean_offline, config_.rejoin_s))(rng);
}

bool FleetModel::eligible(DeviceRng& rng) const {
  return config_.eligible_share >= 1 || std::uniform_real_distribution<double>(0, 1)(rng) < config_.eligible_share;
}

DropPhase FleetModel::drop_phase(bool secure, DeviceRng& rng) const {
  const std::size_t phases = secure ? kDropPhases : 1;  // a plain round has only training
  for (std::size_t phase = 0; phase < phases; ++phase) {
    if (config_.dropout[phase] > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < config_.dropout[phase]) {
      return static_cast<DropPhase>(phase);
    }
  }
  return DropPhase::none;
}

}  // namespace shoal::simulations
