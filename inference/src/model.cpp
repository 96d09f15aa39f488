#include "shoal/inference/model.h"

#include <cstring>

#include "shoal/inference/torch_model.h"
#include "zoo.h"

namespace shoal::inference {
namespace {

Result<weights::DType> dtype_of(const torch::Tensor& tensor, const std::string& name, weights::TensorKind kind) {
  switch (tensor.scalar_type()) {
    case torch::kFloat32: return weights::DType::float32;
    case torch::kFloat16: return weights::DType::float16;
    case torch::kBFloat16: return weights::DType::bfloat16;
    case torch::kInt64:
      if (kind == weights::TensorKind::buffer) return weights::DType::int64;
      [[fallthrough]];
    default:
      return make_error(ErrorCode::unsupported,
                        std::string(weights::to_string(kind)) + " '" + name + "' has dtype " +
                            std::string(c10::toString(tensor.scalar_type())) +
                            "; shoal carries float32, float16 and bfloat16 tensors, and int64 buffers");
  }
}

// The model's whole state in canonical order: parameters, then buffers.
std::vector<std::pair<std::string, torch::Tensor>> state_tensors(ModelBackend& backend) {
  auto tensors = backend.named_parameters();
  for (auto& buffer : backend.named_buffers()) tensors.push_back(std::move(buffer));
  return tensors;
}

Result<weights::Layout> layout_of(ModelBackend& backend) {
  std::vector<weights::TensorSpec> tensors;
  const auto parameters = backend.named_parameters().size();
  for (const auto& [name, tensor] : state_tensors(backend)) {
    const auto kind = tensors.size() < parameters ? weights::TensorKind::parameter : weights::TensorKind::buffer;
    auto dtype = dtype_of(tensor, name, kind);
    if (!dtype) return dtype.error();
    tensors.push_back({name, tensor.sizes().vec(), *dtype, kind});
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
  auto sample_shape = (*backend)->declared_sample_shape();
  if (auto status = check_sample_shape(sample_shape); !status) {
    return make_error(ErrorCode::invalid_argument, "TorchScript model '" + path.string() + "': " + status.error().message);
  }
  Model model(path.filename().string(), std::move(backend).value(), std::move(sample_shape));
  auto layout = layout_of(*model.backend_);
  if (!layout) return make_error(layout.error().code, "TorchScript model '" + path.string() + "': " + layout.error().message);
  model.layout_ = std::move(layout).value();
  return model;
}

Status check_sample_shape(const std::vector<std::int64_t>& shape) {
  constexpr std::int64_t kMaxSampleValues = std::int64_t{1} << 28;  // 1 GiB of float32 for one sample
  std::int64_t values = 1;
  for (const auto dim : shape) {
    if (dim < 1 || dim > kMaxSampleValues / values) {
      return make_error(ErrorCode::invalid_argument, "sample_shape " + format_shape(shape) +
                                                         " is not a sample's shape (each dimension positive, "
                                                         "at most 2^28 values in all)");
    }
    values *= dim;
  }
  return ok_status();
}

Result<Model> Model::open(const std::string& model, std::uint64_t seed) {
  std::error_code error;
  return std::filesystem::exists(model, error) ? load_torchscript(model) : from_zoo(model, seed);
}

weights::Weights Model::get_weights(std::uint64_t version) const {
  weights::Weights out(layout_, version);
  auto values = out.values();
  std::size_t index = 0;
  for (const auto& [name, tensor] : state_tensors(*backend_)) {
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
  for (auto& [name, tensor] : state_tensors(*backend_)) {
    const auto values = weights.tensor(index);
    auto source = torch::from_blob(const_cast<float*>(values.data()), tensor.sizes(), torch::kFloat32);
    // An integer buffer's values are whole in the flat vector; rounding
    // guards the conversion against a float that is not.
    if (!tensor.is_floating_point()) source = source.round();
    tensor.copy_(source);  // converts dtype and moves to the tensor's device
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
