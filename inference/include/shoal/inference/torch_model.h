// The torch side of a Model, for code that trains or runs it (client/
// training, prediction sessions). Including this header brings in libtorch;
// code that only needs layouts and weights should include model.h.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "shoal/inference/device.h"

namespace shoal::inference {

// What a zoo module or a TorchScript module offers the rest of shoal.
class ModelBackend {
 public:
  virtual ~ModelBackend() = default;
  virtual torch::Tensor forward(const torch::Tensor& input) = 0;
  // Trainable parameters in canonical order.
  virtual std::vector<std::pair<std::string, torch::Tensor>> named_parameters() = 0;
  // Buffers (running statistics, counters) in canonical order.
  virtual std::vector<std::pair<std::string, torch::Tensor>> named_buffers() = 0;
  // The shape of one input sample when the module declares it (a TorchScript
  // module's `sample_shape: List[int]` attribute), else empty.
  virtual std::vector<std::int64_t> declared_sample_shape() { return {}; }
  virtual void train(bool on) = 0;
  virtual void to(const torch::Device& device) = 0;
};

torch::Device to_torch(const Device& device);

}  // namespace shoal::inference
