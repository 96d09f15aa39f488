// Local training: what a device does when the aggregator picks it for a
// round. It trains a model on the device's own data and returns the update
// (local weights - global weights) as one flat vector in the model's layout
// order, with the sample count and the loss and accuracy before and after.
//
// Training is plain minibatch SGD with optional momentum, weight decay and
// the FedProx proximal term (Li et al. 2020, eq. 2: mu/2 * ||w - w_global||^2).
// On CPU the same plan, seed and data give the same update bit for bit.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/client/dataset.h"
#include "shoal/inference/model.h"

namespace shoal::client {

struct TrainingPlan {
  int epochs = 1;
  std::size_t batch_size = 32;
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  float proximal_mu = 0.0f;  // FedProx; 0 is plain FedAvg local training
  std::uint64_t seed = 0;     // shuffling order (and any randomness in the model)
  // Measure loss and accuracy on the local data before and after training:
  // two forward passes over it, which cost about as much as 2/3 of an epoch.
  // Off, `after` is the running loss and accuracy over the last epoch's
  // batches (free: the training passes compute them) and `before` is zero.
  bool evaluate_before_after = true;

  // Errors name the first field out of range.
  Status validate() const;
};

struct Evaluation {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // fraction of samples whose argmax is the label
  std::size_t samples = 0;
};

struct TrainingResult {
  std::vector<float> update;  // local - global, layout order
  std::size_t samples = 0;    // examples in the local dataset
  Evaluation before;  // zero when the plan skips evaluation
  Evaluation after;   // the last epoch's running figures when the plan skips evaluation
};

// Mean loss and accuracy of `model` on `data`; the model is left in evaluation mode.
Result<Evaluation> evaluate(inference::Model& model, const Dataset& data, std::size_t batch_size = 256);
// The same on the samples of `data` at `samples` (a simulated device's share).
Result<Evaluation> evaluate(inference::Model& model, const Dataset& data, std::span<const std::size_t> samples,
                            std::size_t batch_size = 256);

// Trains `model` in place on `data` following `plan`.
Result<TrainingResult> train(inference::Model& model, const Dataset& data, const TrainingPlan& plan);
// The same on the samples of `data` at `samples`, without copying them out.
Result<TrainingResult> train(inference::Model& model, const Dataset& data, std::span<const std::size_t> samples,
                             const TrainingPlan& plan);

}  // namespace shoal::client
