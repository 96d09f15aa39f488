// Reading and checking a simulation's TOML file (configs/quickstart.toml
// documents every key).
#include <cmath>

#include "shoal/aggregator/aggregator_config.h"
#include "shoal/simulations/simulation.h"

namespace shoal::simulations {
namespace {

Error invalid(const std::string& what) { return make_error(ErrorCode::invalid_argument, "simulation config: " + what); }

constexpr const char* kDropoutKeys[kDropPhases] = {"dropout.training", "dropout.sharing", "dropout.masking",
                                                   "dropout.unmasking"};

}  // namespace

Result<Transport> parse_transport(std::string_view name) {
  if (name == "engine") return Transport::engine;
  if (name == "tcp") return Transport::tcp;
  return make_error(ErrorCode::invalid_argument, "unknown transport '" + std::string(name) + "' (engine or tcp)");
}

std::array<double, kDropPhases> SimulationConfig::dropout_by_phase() const {
  if (dropout == 0) return fleet.dropout;
  std::array<double, kDropPhases> chances{};
  if (!round.secure.enabled) {
    chances[0] = dropout;  // a plain round has one phase
    return chances;
  }
  // Phase i takes dropout/4 of all devices: of those still in it, (dropout/4) / (1 - i*dropout/4).
  const double each = dropout / kDropPhases;
  for (std::size_t i = 0; i < kDropPhases; ++i) chances[i] = each / (1 - static_cast<double>(i) * each);
  return chances;
}

PartitionSpec SimulationConfig::partition_spec() const {
  auto spec = split;
  spec.devices = devices;
  spec.seed = seed;
  spec.min_samples = spec.split == SplitKind::dirichlet ? 10 : 1;  // as the dirichlet split always asked
  return spec;
}

Status SimulationConfig::validate() const {
  if (devices == 0) return invalid("fleet.devices must be at least 1");
  if (split.split == SplitKind::dirichlet && !(split.alpha > 0 && std::isfinite(split.alpha))) {
    return invalid("fleet.alpha must be positive");
  }
  if (split.shards_per_device == 0) return invalid("fleet.shards_per_device must be at least 1");
  if (!(split.quantity_sigma >= 0 && std::isfinite(split.quantity_sigma))) {
    return invalid("fleet.quantity_sigma must be >= 0");
  }
  if (train_images.empty() || train_labels.empty()) return invalid("data.train_images and data.train_labels are required");
  if (test_images.empty() || test_labels.empty()) return invalid("data.test_images and data.test_labels are required");
  if (!(expect_accuracy >= 0 && expect_accuracy <= 1)) return invalid("fleet.expect_accuracy must be in [0, 1]");
  if (!(dropout >= 0 && dropout < 1)) return invalid("fleet.dropout must be in [0, 1)");
  if (dropout > 0 && std::any_of(fleet.dropout.begin(), fleet.dropout.end(), [](double p) { return p != 0; })) {
    return invalid("fleet.dropout and the [dropout] section are both set; use one");
  }
  if (round.final_version == 0) return invalid("fleet.rounds must be at least 1");
  if (round.min_devices > devices) return invalid("cohort.min_devices exceeds fleet.devices");
  if (round.min_available > devices) return invalid("cohort.min_available exceeds fleet.devices");
  if (auto status = fleet.validate(); !status) return invalid(status.error().message);
  if (auto status = round.validate(); !status) return status;
  return strategy.validate();
}

Result<SimulationConfig> load_simulation_config(const std::filesystem::path& path) {
  auto file = config::ConfigFile::load(path);
  if (!file) return file.error();
  SimulationConfig config;
  file->read("fleet.devices", config.devices);
  file->read_choice("fleet.split", config.split.split, parse_split);
  file->read("fleet.alpha", config.split.alpha);
  file->read("fleet.shards_per_device", config.split.shards_per_device);
  file->read("fleet.quantity_sigma", config.split.quantity_sigma);
  file->read("fleet.samples_per_device", config.split.samples_per_device);
  file->read("fleet.seed", config.seed);
  file->read("fleet.rounds", config.round.final_version);
  file->read("fleet.expect_accuracy", config.expect_accuracy);
  file->read("fleet.dropout", config.dropout);
  file->read_path("fleet.work_dir", config.work_dir);
  file->read_choice("fleet.transport", config.transport, parse_transport);
  file->read("fleet.workers", config.workers);
  auto& fleet = config.fleet;
  file->read("devices.speed", fleet.speed);
  file->read("devices.speed_spread", fleet.speed_spread);
  file->read("devices.uplink_mbps", fleet.uplink_mbps);
  file->read("devices.downlink_mbps", fleet.downlink_mbps);
  file->read("devices.bandwidth_spread", fleet.bandwidth_spread);
  file->read("devices.latency_ms", fleet.latency_ms);
  file->read("devices.online_share", fleet.online_share);
  file->read("devices.session_s", fleet.session_s);
  file->read("devices.diurnal_amplitude", fleet.diurnal_amplitude);
  file->read("devices.eligible_share", fleet.eligible_share);
  file->read("devices.rejoin_s", fleet.rejoin_s);
  for (std::size_t phase = 0; phase < kDropPhases; ++phase) file->read(kDropoutKeys[phase], fleet.dropout[phase]);
  file->read("model.name", config.model);
  // A TorchScript file is named relative to the config file, as every path is.
  if (config.model.find('/') != std::string::npos || config.model.ends_with(".pt")) {
    std::filesystem::path model_path;
    file->read_path("model.name", model_path);
    config.model = model_path.string();
  }
  file->read("model.seed", config.model_seed);
  file->read("model.threads", config.threads);
  file->read_path("data.train_images", config.train_images);
  file->read_path("data.train_labels", config.train_labels);
  file->read_path("data.test_images", config.test_images);
  file->read_path("data.test_labels", config.test_labels);
  file->read("data.train_samples", config.train_samples);
  file->read("data.test_samples", config.test_samples);
  aggregator::read_round_settings(*file, config.round, config.strategy);
  if (auto status = file->finish(); !status) return status.error();
  if (auto status = config.validate(); !status) {
    return make_error(status.error().code, path.string() + ": " + status.error().message);
  }
  return config;
}

}  // namespace shoal::simulations
