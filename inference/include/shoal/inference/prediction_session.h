// PredictionSession: answers inference requests on a device. It moves the
// model once, warms it up, then runs batches of flat float inputs and
// returns class probabilities (softmax of the outputs) or raw outputs.
// Inputs of the wrong size are refused with the expected shape in the
// message, never passed on to libtorch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/inference/model.h"

namespace shoal::inference {

struct Predictions {
  std::size_t batch = 0;
  std::size_t outputs = 0;     // values per sample (classes)
  std::vector<float> values;   // batch x outputs, row-major
  std::vector<std::int64_t> labels;  // argmax per sample

  std::span<const float> row(std::size_t sample) const {
    return std::span<const float>(values).subspan(sample * outputs, outputs);
  }
};

enum class OutputKind { probabilities, raw };

class PredictionSession {
 public:
  // Takes the model, moves it to `device`, sets evaluation mode and runs
  // `warmup_batches` batches of zeros of `sample_shape` (the model's own when empty).
  static Result<PredictionSession> open(Model model, const Device& device,
                                        std::vector<std::int64_t> sample_shape = {}, int warmup_batches = 2);

  // `inputs` holds `batch` samples of sample_shape(), row-major.
  Result<Predictions> predict(std::span<const float> inputs, std::size_t batch,
                              OutputKind kind = OutputKind::probabilities);

  const std::vector<std::int64_t>& sample_shape() const { return sample_shape_; }
  Model& model() { return model_; }

 private:
  PredictionSession(Model model, std::vector<std::int64_t> sample_shape)
      : model_(std::move(model)), sample_shape_(std::move(sample_shape)) {}

  Model model_;
  std::vector<std::int64_t> sample_shape_;
};

}  // namespace shoal::inference
