// ServedModel: one loaded, warmed-up version of a model that the inference
// service answers from; ModelSlot: the version that the next batch uses.
//
// A swap replaces the slot's pointer between batches. A batch holds its own
// reference, so it finishes on the version it started with, and a version
// enters the slot only once it is loaded and has answered a probe: a swap
// never serves a half-loaded model.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/inference/model.h"
#include "shoal/inference/prediction_session.h"
#include "shoal/weights/weights.h"

namespace shoal::serving {

struct ModelInfo {
  std::string name;                       // what requests name: a zoo name or a TorchScript file's stem
  std::uint64_t version = 0;              // the weights' version (a release's, or a round's)
  std::string source;                     // "release", "latest-global", "file": where it came from
  std::vector<std::int64_t> sample_shape;  // one input sample, e.g. [1, 28, 28]
  std::size_t sample_values = 0;          // values per sample (the shape's product)
  std::size_t outputs = 0;                // values per sample out (classes)
};

// The softmax of each row of `classes` values (the probabilities of logits).
std::vector<float> softmax_rows(std::span<const float> logits, std::size_t classes);

class ServedModel {
 public:
  // Loads `weights` into `model` on `device`, warms it up and probes it
  // once (a non-finite output is refused). `name` empty: the zoo name, or
  // the TorchScript file's stem.
  static Result<std::shared_ptr<ServedModel>> load(inference::Model model, const weights::Weights& weights,
                                                   std::string source, std::string name = {},
                                                   const inference::Device& device = {});

  const ModelInfo& info() const { return *info_; }
  std::shared_ptr<const ModelInfo> shared_info() const { return info_; }

  // The raw outputs (logits) of `batch` samples, row-major. Not thread-safe:
  // only the batcher's thread calls it.
  Result<std::vector<float>> forward(std::span<const float> inputs, std::size_t batch);

 private:
  ServedModel(inference::PredictionSession session, std::shared_ptr<const ModelInfo> info)
      : session_(std::move(session)), info_(std::move(info)) {}

  inference::PredictionSession session_;
  std::shared_ptr<const ModelInfo> info_;
};

// Thread-safe.
class ModelSlot {
 public:
  void set(std::shared_ptr<ServedModel> model);
  // Null while nothing is loaded.
  std::shared_ptr<ServedModel> current() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<ServedModel> model_;
};

}  // namespace shoal::serving
