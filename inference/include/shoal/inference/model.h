// Model: a trainable network from the built-in zoo or a TorchScript file,
// seen from outside as its Layout and its Weights. Both sources train and
// predict through the same interface (see torch_model.h for the torch side).
//
// The canonical order is the module's parameters in registration order, then
// its buffers (batch-norm statistics and counters) in registration order, so
// the flat vector is the model's whole state; Weights of another layout are
// refused with both layout hashes in the message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/inference/device.h"
#include "shoal/weights/weights.h"

namespace shoal::inference {

class ModelBackend;  // torch_model.h

// "[1, 28, 28]": how shapes appear in error messages.
std::string format_shape(const std::vector<std::int64_t>& shape);
// Refuses a declared sample shape with a dimension below 1 or more than 2^28
// values in all (a probe or a batch of it could not be allocated).
Status check_sample_shape(const std::vector<std::int64_t>& shape);

class Model {
 public:
  // Zoo models take 1x28x28 images and give 10 class scores:
  //   logreg  one linear layer (7,850 parameters)
  //   mlp     784-200-200-10 with ReLU (199,210)
  //   cnn     two 5x5 conv + 2x2 max-pool layers, 512-unit dense (1,663,370)
  //   mlp-large  784-3072-3072-10 with ReLU (11,882,506), for benchmarks at scale
  // Initialisation is deterministic for a given seed.
  static Result<Model> from_zoo(std::string_view name, std::uint64_t seed);
  static std::vector<std::string> zoo_names();
  // A module saved with torch.jit.save; its parameters and buffers define the layout.
  static Result<Model> load_torchscript(const std::filesystem::path& path);
  // A TorchScript file when `model` names one that exists, else the zoo
  // model of that name initialised from `seed` (what every --model takes).
  static Result<Model> open(const std::string& model, std::uint64_t seed);

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const std::string& name() const { return name_; }
  const weights::Layout& layout() const { return layout_; }
  // Shape of one input sample, e.g. {1, 28, 28}; for TorchScript, the
  // module's `sample_shape: List[int]` attribute, empty when it has none.
  const std::vector<std::int64_t>& sample_shape() const { return sample_shape_; }
  const Device& device() const { return device_; }

  // The current parameters and buffers as a flat vector tagged with `version`.
  weights::Weights get_weights(std::uint64_t version) const;
  // Loads `weights` into the parameters and buffers; refuses another layout.
  Status set_weights(const weights::Weights& weights);
  Status to(const Device& device);

  ModelBackend& backend() { return *backend_; }

 private:
  Model(std::string name, std::unique_ptr<ModelBackend> backend, std::vector<std::int64_t> sample_shape);

  std::string name_;
  std::unique_ptr<ModelBackend> backend_;
  weights::Layout layout_;
  std::vector<std::int64_t> sample_shape_;
  Device device_;
};

}  // namespace shoal::inference
