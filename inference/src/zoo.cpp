#include "zoo.h"

#include <torch/script.h>

namespace shoal::inference::detail {
namespace {

namespace nn = torch::nn;

// A torch::nn::Sequential with named layers, so parameters are called
// "conv1.weight" rather than "0.weight".
class SequentialBackend final : public ModelBackend {
 public:
  explicit SequentialBackend(nn::Sequential net) : net_(std::move(net)) {}
  torch::Tensor forward(const torch::Tensor& input) override { return net_->forward(input); }
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : net_->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  }
  std::vector<std::pair<std::string, torch::Tensor>> named_buffers() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : net_->named_buffers()) out.emplace_back(item.key(), item.value());
    return out;
  }
  void train(bool on) override { net_->train(on); }
  void to(const torch::Device& device) override { net_->to(device); }

 private:
  nn::Sequential net_;
};

nn::Sequential logreg() {
  return nn::Sequential({{"flatten", nn::Flatten()}, {"fc", nn::Linear(784, 10)}});
}

// The "2NN" of McMahan et al. 2017.
nn::Sequential mlp() {
  return nn::Sequential({{"flatten", nn::Flatten()},
                         {"fc1", nn::Linear(784, 200)},
                         {"relu1", nn::ReLU()},
                         {"fc2", nn::Linear(200, 200)},
                         {"relu2", nn::ReLU()},
                         {"fc3", nn::Linear(200, 10)}});
}

// A wide three-layer perceptron of 11.9M parameters: a model the size of
// those shipped to phones, for release and aggregation benchmarks at scale.
nn::Sequential mlp_large() {
  return nn::Sequential({{"flatten", nn::Flatten()},
                         {"fc1", nn::Linear(784, 3072)},
                         {"relu1", nn::ReLU()},
                         {"fc2", nn::Linear(3072, 3072)},
                         {"relu2", nn::ReLU()},
                         {"fc3", nn::Linear(3072, 10)}});
}

// The CNN of McMahan et al. 2017: two 5x5 convolutions with 2x2 max pooling,
// a 512-unit dense layer, 10 outputs.
nn::Sequential cnn() {
  return nn::Sequential({{"conv1", nn::Conv2d(nn::Conv2dOptions(1, 32, 5).padding(2))},
                         {"relu1", nn::ReLU()},
                         {"pool1", nn::MaxPool2d(2)},
                         {"conv2", nn::Conv2d(nn::Conv2dOptions(32, 64, 5).padding(2))},
                         {"relu2", nn::ReLU()},
                         {"pool2", nn::MaxPool2d(2)},
                         {"flatten", nn::Flatten()},
                         {"fc1", nn::Linear(64 * 7 * 7, 512)},
                         {"relu3", nn::ReLU()},
                         {"fc2", nn::Linear(512, 10)}});
}

class TorchScriptBackend final : public ModelBackend {
 public:
  explicit TorchScriptBackend(torch::jit::Module module) : module_(std::move(module)) {}
  torch::Tensor forward(const torch::Tensor& input) override { return module_.forward({input}).toTensor(); }
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : module_.named_parameters(/*recurse=*/true)) out.emplace_back(item.name, item.value);
    return out;
  }
  std::vector<std::pair<std::string, torch::Tensor>> named_buffers() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : module_.named_buffers(/*recurse=*/true)) out.emplace_back(item.name, item.value);
    return out;
  }
  std::vector<std::int64_t> declared_sample_shape() override {
    if (!module_.hasattr("sample_shape")) return {};
    const auto value = module_.attr("sample_shape");
    return value.isIntList() ? value.toIntVector() : std::vector<std::int64_t>{};
  }
  void train(bool on) override { module_.train(on); }
  void to(const torch::Device& device) override { module_.to(device); }

 private:
  torch::jit::Module module_;
};

}  // namespace

std::vector<std::string> zoo_model_names() { return {"logreg", "mlp", "cnn", "mlp-large"}; }

Result<std::unique_ptr<ModelBackend>> make_zoo_backend(std::string_view name, std::uint64_t seed) {
  // Initialisation draws from libtorch's global generator; seeding it here
  // makes the same seed give the same initial weights.
  torch::manual_seed(seed);
  if (name == "logreg") return std::unique_ptr<ModelBackend>(std::make_unique<SequentialBackend>(logreg()));
  if (name == "mlp") return std::unique_ptr<ModelBackend>(std::make_unique<SequentialBackend>(mlp()));
  if (name == "cnn") return std::unique_ptr<ModelBackend>(std::make_unique<SequentialBackend>(cnn()));
  if (name == "mlp-large") return std::unique_ptr<ModelBackend>(std::make_unique<SequentialBackend>(mlp_large()));
  return make_error(ErrorCode::not_found,
                    "no zoo model '" + std::string(name) + "'; the zoo has logreg, mlp, cnn, mlp-large");
}

Result<std::unique_ptr<ModelBackend>> load_torchscript_backend(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) {
    return make_error(ErrorCode::not_found, "TorchScript model '" + path.string() + "' does not exist");
  }
  try {
    return std::unique_ptr<ModelBackend>(std::make_unique<TorchScriptBackend>(torch::jit::load(path.string())));
  } catch (const c10::Error& e) {
    return make_error(ErrorCode::corrupt, "TorchScript model '" + path.string() +
                                              "' cannot be loaded: " + e.what_without_backtrace());
  }
}

}  // namespace shoal::inference::detail
