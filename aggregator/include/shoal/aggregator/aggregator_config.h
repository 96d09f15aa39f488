// The aggregator's settings, as read from its TOML file (configs/aggregator.toml
// documents every key). The round sections ([cohort], [training],
// [aggregation], [evaluation]) are shared with the simulator's config.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "shoal/aggregator/rollout_guard.h"
#include "shoal/aggregator/round_coordinator.h"
#include "shoal/aggregator/server_optimizer.h"
#include "shoal/base/env.h"
#include "shoal/config/config_file.h"
#include "shoal/protocol/peer_memory_guard.h"

namespace shoal::aggregator {

struct AggregatorConfig {
  std::string bind = "tcp://0.0.0.0:7400";
  std::filesystem::path server_key;       // secret key file of role server
  std::filesystem::path enrolment;        // list file or directory of device .pub files
  std::filesystem::path initial_weights;  // the model to start from when state_dir has no checkpoint
  std::filesystem::path state_dir;        // checkpoints; metrics.jsonl unless metrics_log is set
  std::filesystem::path metrics_log;
  std::filesystem::path release_repository;  // a shoal-release repository served to devices; empty: none
  protocol::MemoryBudget memory;  // [limits]: what libzmq may hold for one peer, and for all
  RolloutGuardConfig rollout;     // [rollout]: the keys and policy of automatic rollout halts
  RoundConfig round;  // round.final_version (key server.rounds): stop at this version; 0: run until stopped
  StrategyConfig strategy;
  // Not a setting: where checkpoints reach the disk. Tests give a FaultInjectingEnv.
  base::Env* env = &base::Env::standard();

  // Every required setting present and every value in range; errors name the setting.
  Status validate() const;
  std::filesystem::path metrics_path() const { return metrics_log.empty() ? state_dir / "metrics.jsonl" : metrics_log; }
};

// Reads the [cohort], [training], [aggregation] and [evaluation] sections.
void read_round_settings(config::ConfigFile& file, RoundConfig& round, StrategyConfig& strategy);

// Reads [server] and the round sections, then validates.
Result<AggregatorConfig> read_aggregator_config(config::ConfigFile& file);
Result<AggregatorConfig> load_aggregator_config(const std::filesystem::path& path);

}  // namespace shoal::aggregator
