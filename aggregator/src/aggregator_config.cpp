#include "shoal/aggregator/aggregator_config.h"

namespace shoal::aggregator {

void read_round_settings(config::ConfigFile& file, RoundConfig& round, StrategyConfig& strategy) {
  file.read("cohort.min_devices", round.min_devices);
  file.read("cohort.max_devices", round.max_devices);
  file.read("cohort.min_available", round.min_available);
  file.read("cohort.fraction", round.fraction);
  file.read("cohort.require_eligible", round.require_eligible);
  file.read("cohort.seed", round.seed);
  file.read_seconds("cohort.train_deadline_s", round.train_deadline);
  file.read_seconds("cohort.device_timeout_s", round.device_timeout);

  file.read("training.epochs", round.plan.epochs);
  file.read("training.batch_size", round.plan.batch_size);
  file.read("training.learning_rate", round.plan.learning_rate);
  file.read("training.momentum", round.plan.momentum);
  file.read("training.weight_decay", round.plan.weight_decay);
  file.read("training.proximal_mu", round.plan.proximal_mu);
  file.read("training.seed", round.plan.seed);

  file.read_choice("aggregation.strategy", strategy.kind, parse_strategy);
  file.read("aggregation.server_learning_rate", strategy.server_learning_rate);
  file.read("aggregation.beta1", strategy.beta1);
  file.read("aggregation.beta2", strategy.beta2);
  file.read("aggregation.tau", strategy.tau);
  file.read_choice("aggregation.combiner", round.combiner, parse_combiner);
  file.read("aggregation.trim_fraction", round.trim_fraction);
  file.read("aggregation.local_tensors", round.local_tensors);
  file.read("aggregation.max_update_norm", round.max_update_norm);

  file.read("evaluation.every", round.evaluate_every);
  file.read_seconds("evaluation.deadline_s", round.evaluation_deadline);

  auto& secure = round.secure;
  file.read("secure.enabled", secure.enabled);
  file.read("secure.neighbours", secure.neighbours);
  file.read("secure.threshold", secure.threshold);
  file.read("secure.bits", secure.bits);
  file.read("secure.range", secure.range);
  file.read("secure.weight_cap", secure.weight_cap);
  file.read_seconds("secure.phase_deadline_s", secure.phase_deadline);
  if (std::uint64_t mib = secure.upload_memory_bytes >> 20; file.has("secure.upload_memory_mb")) {
    file.read("secure.upload_memory_mb", mib);
    secure.upload_memory_bytes = mib <= kMaxMemoryMb ? static_cast<std::size_t>(mib) << 20 : 0;  // 0: refused
  }

  auto& privacy = round.privacy;
  file.read("privacy.clip_norm", privacy.clip_norm);
  file.read("privacy.noise_multiplier", privacy.noise_multiplier);
  file.read("privacy.adaptive_clipping", privacy.adaptive_clipping);
  file.read("privacy.target_quantile", privacy.target_quantile);
  file.read("privacy.clip_learning_rate", privacy.clip_learning_rate);
  file.read("privacy.clip_count_stddev", privacy.clip_count_stddev);
  file.read("privacy.epsilon_budget", privacy.epsilon_budget);
  file.read("privacy.delta", privacy.delta);
}

Status AggregatorConfig::validate() const {
  auto missing = [](const char* key) {
    return make_error(ErrorCode::invalid_argument, std::string("aggregator config: server.") + key + " is required");
  };
  if (bind.empty()) return missing("bind");
  if (server_key.empty()) return missing("key");
  if (enrolment.empty()) return missing("enrolment");
  if (!release_repository.empty() && !std::filesystem::is_directory(release_repository / "metadata")) {
    return make_error(ErrorCode::invalid_argument,
                      "aggregator config: release.repository " + release_repository.string() +
                          " holds no metadata/ directory (create it with shoal-release init)");
  }
  if (state_dir.empty()) return missing("state_dir");
  const auto& policy = rollout.policy;
  if (!(policy.max_failure_share >= 0 && policy.max_failure_share <= 1)) {
    return make_error(ErrorCode::invalid_argument, "aggregator config: rollout.max_failure_share must be in [0, 1]");
  }
  if (!(policy.max_accuracy_drop >= 0 && policy.max_accuracy_drop <= 1)) {
    return make_error(ErrorCode::invalid_argument, "aggregator config: rollout.max_accuracy_drop must be in [0, 1]");
  }
  if (policy.min_reports < 1 || policy.min_accuracy_devices < 1) {
    return make_error(ErrorCode::invalid_argument,
                      "aggregator config: rollout.min_reports and rollout.min_accuracy_devices must be at least 1");
  }
  if (rollout.enabled() && release_repository.empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "aggregator config: rollout.rollout_key needs release.repository, where halts are published");
  }
  const std::string range = " must be in [1, " + std::to_string(kMaxMemoryMb) + "]";
  if (memory.per_peer_bytes == 0) return make_error(ErrorCode::invalid_argument, "aggregator config: limits.peer_memory_mb" + range);
  if (memory.total_bytes == 0) return make_error(ErrorCode::invalid_argument, "aggregator config: limits.total_memory_mb" + range);
  if (memory.total_bytes < memory.per_peer_bytes) {
    return make_error(ErrorCode::invalid_argument, "aggregator config: limits.total_memory_mb must be at least limits.peer_memory_mb");
  }
  if (auto status = round.validate(); !status) return status;
  if (auto status = strategy.validate(); !status) return status;
  return ok_status();
}

Result<AggregatorConfig> read_aggregator_config(config::ConfigFile& file) {
  AggregatorConfig config;
  file.read("server.bind", config.bind);
  file.read_path("server.key", config.server_key);
  file.read_path("server.enrolment", config.enrolment);
  file.read_path("server.initial_weights", config.initial_weights);
  file.read_path("server.state_dir", config.state_dir);
  file.read_path("server.metrics_log", config.metrics_log);
  file.read_path("release.repository", config.release_repository);
  file.read("server.rounds", config.round.final_version);
  // MiB in the file; 0 marks a value out of range for validate().
  auto read_mib = [&](const char* key, std::size_t& bytes) {
    if (!file.has(key)) return;
    std::uint64_t mib = 0;
    file.read(key, mib);
    bytes = mib >= 1 && mib <= kMaxMemoryMb ? static_cast<std::size_t>(mib) << 20 : 0;
  };
  file.read_path("rollout.rollout_key", config.rollout.rollout_key);
  file.read_path("rollout.snapshot_key", config.rollout.snapshot_key);
  file.read_path("rollout.timestamp_key", config.rollout.timestamp_key);
  file.read("rollout.max_failure_share", config.rollout.policy.max_failure_share);
  file.read("rollout.min_reports", config.rollout.policy.min_reports);
  file.read("rollout.max_accuracy_drop", config.rollout.policy.max_accuracy_drop);
  file.read("rollout.min_accuracy_devices", config.rollout.policy.min_accuracy_devices);
  read_mib("limits.peer_memory_mb", config.memory.per_peer_bytes);
  read_mib("limits.total_memory_mb", config.memory.total_bytes);
  read_round_settings(file, config.round, config.strategy);
  if (auto status = file.finish(); !status) return status.error();
  if (auto status = config.validate(); !status) {
    return make_error(status.error().code, file.source().string() + ": " + status.error().message);
  }
  return config;
}

Result<AggregatorConfig> load_aggregator_config(const std::filesystem::path& path) {
  auto file = config::ConfigFile::load(path);
  if (!file) return file.error();
  return read_aggregator_config(*file);
}

}  // namespace shoal::aggregator
