#include "shoal/inference/model.h"

#include <cstring>

#include "shoal/inference/torch_model.h"
#include "zoo.h"

namespace shoal::inference {
namespace {

Result<weights::DType> dtype_of(const torch::Tensor& tensor, const std::string& name) {
  switch (tensor.scalar_type()) {
    case torch::kFloat32: return weights::DType::float32;
    case torch::kFloat16: return weights::DType::float16;
    case torch::kBFloat16: return weights::DType::bfloat16;
    default:
      return make_error(ErrorCode::unsupported,
                        "parameter '" + name + "' has dtype " + std::string(c10::toString(tensor.scalar_type())) +
                            "; shoal trains float32, float16 and bfloat16 parameters");
  }
}

Result<weights::Layout> layout_of(ModelBackend& backend) {
  std::vector<weights::TensorSpec> tensors;
  for (const auto& [name, tensor] : backend.named_parameters()) {
    auto dtype = dtype_of(tensor, name);
    if (!dtype) return dtype.error();
    tensors.push_back({name, tensor.sizes().vec(), *dtype});
  }
  return weights::Layout::create(std::move(tensors));
}

}  // namespace

std::string format_shape(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

Model::Model(std::string name, std::unique_ptr<ModelBackend> backend, std::vector<std::int64_t> sample_shape)
    : name_(std::move(name)),
      backend_(std::move(backend)),
      layout_(*weights::Layout::create({})),
      sample_shape_(std::move(sample_shape)) {}

Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

std::vector<std::string> Model::zoo_names() { return detail::zoo_model_names(); }

Result<Model> Model::from_zoo(std::string_view name, std::uint64_t seed) {
  auto backend = detail::make_zoo_backend(name, seed);
  if (!backend) return backend.error();
  Model model(std::string(name), std::move(backend).value(), {1, 28, 28});
  auto layout = layout_of(*model.backend_);
  if (!layout) return layout.error();
  model.layout_ = std::move(layout).value();
  return model;
}

Result<Model> Model::load_torchscript(const std::filesystem::path& path) {
  auto backend = detail::load_torchscript_backend(path);
  if (!backend) return backend.error();
  Model model(path.filename().string(), std::move(backend).value(), {});
  auto layout = layout_of(*model.backend_);
  if (!layout) return make_error(layout.error().code, "TorchScript model '" + path.string() + "': " + layout.error().message);
  model.layout_ = std::move(layout).value();
  return model;
}

weights::Weights Model::get_weights(std::uint64_t version) const {
  weights::Weights out(layout_, version);
  auto values = out.values();
  std::size_t index = 0;
  for (const auto& [name, tensor] : backend_->named_parameters()) {
    const auto cpu = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::memcpy(values.data() + layout_.offset(index), cpu.data_ptr<float>(), cpu.numel() * sizeof(float));
    ++index;
  }
  return out;
}

Status Model::set_weights(const weights::Weights& weights) {
  if (!(weights.layout() == layout_)) return weights::layout_mismatch("weights for model '" + name_ + "'", layout_, weights.layout());
  torch::NoGradGuard no_grad;
  std::size_t index = 0;
  for (auto& [name, tensor] : backend_->named_parameters()) {
    const auto values = weights.tensor(index);
    const auto source = torch::from_blob(const_cast<float*>(values.data()), tensor.sizes(), torch::kFloat32);
    tensor.copy_(source);  // converts dtype and moves to the parameter's device
    ++index;
  }
  return ok_status();
}

Status Model::to(const Device& device) {
  try {
    backend_->to(to_torch(device));
  } catch (const c10::Error& e) {
    return make_error(ErrorCode::io, "cannot move model '" + name_ + "' to " + device.name() + ": " +
                                         e.what_without_backtrace());
  }
  device_ = device;
  return ok_status();
}

}  // namespace shoal::inference
