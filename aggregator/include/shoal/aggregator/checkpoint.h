// The aggregator's crash-safe state: the global weights, the server
// optimiser's moments and the round counter, checkpointed after every
// applied round in the state directory:
//
//   checkpoint.json              which files make up the current checkpoint
//   global-v<N>.weights          the global model at version N
//   moments-v<N>-first.weights   optimiser state, when the strategy has it
//   moments-v<N>-second.weights
//
// checkpoint.json also carries the privacy accounting, when rounds were
// differentially private or the clip norm adapts.
//
// The weights files of version N are written (each atomically) first;
// renaming the new checkpoint.json into place is the commit point; files of
// other versions are removed only after it. A kill at any moment leaves
// either the old or the new checkpoint whole, never a mix.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/env.h"
#include "shoal/base/result.h"
#include "shoal/weights/weights.h"

namespace shoal::aggregator {

// What a restart must not lose of differential privacy: the RDP spent at
// each order (else ε would count from zero again) and the clip norm that
// adaptive clipping has reached.
struct PrivacyState {
  std::vector<double> orders;
  std::vector<double> rdp;  // one per order
  double clip_norm = 0;     // 0: no clipping
};

struct Checkpoint {
  weights::Weights global;       // its version() is the model version
  std::uint64_t rounds_started;  // applied and abandoned rounds, so round ids never repeat
  std::string strategy;          // the server optimiser the moments belong to
  std::vector<float> first_moment;
  std::vector<float> second_moment;
  std::optional<PrivacyState> privacy;
};

// What write_checkpoint stores, borrowed: the server checkpoints its live
// model and optimiser state without copying them.
struct CheckpointView {
  const weights::Weights& global;
  std::uint64_t rounds_started;
  std::string_view strategy;
  std::span<const float> first_moment;
  std::span<const float> second_moment;
  const PrivacyState* privacy;  // null: none to keep
};

// Every disk operation goes through `env`.
Status write_checkpoint(const std::filesystem::path& state_dir, const CheckpointView& checkpoint,
                        base::Env& env = base::Env::standard());
inline Status write_checkpoint(const std::filesystem::path& state_dir, const Checkpoint& checkpoint,
                               base::Env& env = base::Env::standard()) {
  return write_checkpoint(state_dir, CheckpointView{checkpoint.global, checkpoint.rounds_started, checkpoint.strategy,
                                                    checkpoint.first_moment, checkpoint.second_moment,
                                                    checkpoint.privacy ? &*checkpoint.privacy : nullptr},
                          env);
}

// nullopt when the directory holds no checkpoint yet; an error naming the
// file and the fault when one is damaged or inconsistent.
Result<std::optional<Checkpoint>> read_checkpoint(const std::filesystem::path& state_dir,
                                                  base::Env& env = base::Env::standard());

}  // namespace shoal::aggregator
