#include "shoal/inference/prediction_session.h"

#include <numeric>

#include "shoal/inference/torch_model.h"

namespace shoal::inference {
namespace {

std::int64_t product(const std::vector<std::int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

}  // namespace

Result<PredictionSession> PredictionSession::open(Model model, const Device& device,
                                                  std::vector<std::int64_t> sample_shape, int warmup_batches) {
  if (sample_shape.empty()) sample_shape = model.sample_shape();
  if (sample_shape.empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "model '" + model.name() + "' does not declare its input shape; pass the sample shape");
  }
  if (auto status = model.to(device); !status) return status.error();
  model.backend().train(false);
  PredictionSession session(std::move(model), std::move(sample_shape));
  const std::vector<float> zeros(static_cast<std::size_t>(product(session.sample_shape_)), 0.0f);
  for (int i = 0; i < warmup_batches; ++i) {
    auto warm = session.predict(zeros, 1, OutputKind::raw);
    if (!warm) return make_error(warm.error().code, "warm-up failed: " + warm.error().message);
  }
  return session;
}

Result<Predictions> PredictionSession::predict(std::span<const float> inputs, std::size_t batch, OutputKind kind) {
  const auto per_sample = static_cast<std::size_t>(product(sample_shape_));
  if (batch == 0 || inputs.size() != batch * per_sample) {
    return make_error(ErrorCode::invalid_argument,
                      "input has " + std::to_string(inputs.size()) + " values; a batch of " + std::to_string(batch) +
                          " samples of shape " + format_shape(sample_shape_) + " needs " +
                          std::to_string(batch * per_sample));
  }
  std::vector<std::int64_t> shape = {static_cast<std::int64_t>(batch)};
  shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
  try {
    torch::InferenceMode inference;
    const auto device = to_torch(model_.device());
    auto input = torch::from_blob(const_cast<float*>(inputs.data()), shape, torch::kFloat32);
    if (!device.is_cpu()) input = input.to(device);
    auto output = model_.backend().forward(input);
    if (output.dim() != 2 || output.size(0) != static_cast<std::int64_t>(batch)) {
      return make_error(ErrorCode::unsupported, "model '" + model_.name() + "' returned shape " +
                                                    format_shape(output.sizes().vec()) + ", expected [batch, outputs]");
    }
    if (kind == OutputKind::probabilities) output = torch::softmax(output, 1);
    const auto labels = output.argmax(1).to(torch::kCPU);
    output = output.to(torch::kCPU, torch::kFloat32).contiguous();
    Predictions predictions;
    predictions.batch = batch;
    predictions.outputs = static_cast<std::size_t>(output.size(1));
    predictions.values.assign(output.data_ptr<float>(), output.data_ptr<float>() + output.numel());
    predictions.labels.assign(labels.data_ptr<std::int64_t>(), labels.data_ptr<std::int64_t>() + batch);
    return predictions;
  } catch (const c10::Error& e) {
    return make_error(ErrorCode::invalid_argument, "model '" + model_.name() + "' failed on input of shape " +
                                                       format_shape(shape) + ": " + e.what_without_backtrace());
  }
}

}  // namespace shoal::inference
