#include "shoal/serving/served_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

namespace shoal::serving {

std::vector<float> softmax_rows(std::span<const float> logits, std::size_t classes) {
  std::vector<float> probabilities(logits.size());
  for (std::size_t begin = 0; classes > 0 && begin + classes <= logits.size(); begin += classes) {
    const auto row = logits.subspan(begin, classes);
    const float top = *std::max_element(row.begin(), row.end());
    double sum = 0;
    for (float value : row) sum += std::exp(double(value) - top);
    for (std::size_t j = 0; j < classes; ++j) probabilities[begin + j] = static_cast<float>(std::exp(double(row[j]) - top) / sum);
  }
  return probabilities;
}

Result<std::shared_ptr<ServedModel>> ServedModel::load(inference::Model model, const weights::Weights& weights,
                                                       std::string source, std::string name,
                                                       const inference::Device& device) {
  // A TorchScript model's name is its file's name; requests use the stem ("net.pt" is served as "net").
  if (name.empty()) name = std::filesystem::path(model.name()).stem().string();
  const std::string what = "model '" + name + "' version " + std::to_string(weights.version());
  if (auto status = model.set_weights(weights); !status) {
    return make_error(status.error().code, what + ": " + status.error().message);
  }
  auto session = inference::PredictionSession::open(std::move(model), device);
  if (!session) return make_error(session.error().code, what + ": " + session.error().message);
  auto info = std::make_shared<ModelInfo>();
  info->name = std::move(name);
  info->version = weights.version();
  info->source = std::move(source);
  info->sample_shape = session->sample_shape();
  info->sample_values = static_cast<std::size_t>(std::accumulate(
      info->sample_shape.begin(), info->sample_shape.end(), std::int64_t{1}, std::multiplies<>()));
  const std::vector<float> probe(info->sample_values, 0.0f);
  auto outputs = session->predict(probe, 1, inference::OutputKind::raw);
  if (!outputs) return make_error(outputs.error().code, what + ": the probe failed: " + outputs.error().message);
  for (float value : outputs->values) {
    if (!std::isfinite(value)) return make_error(ErrorCode::corrupt, what + " gives non-finite outputs on a probe");
  }
  info->outputs = outputs->outputs;
  return std::shared_ptr<ServedModel>(new ServedModel(std::move(session).value(), std::move(info)));
}

Result<std::vector<float>> ServedModel::forward(std::span<const float> inputs, std::size_t batch) {
  auto predictions = session_.predict(inputs, batch, inference::OutputKind::raw);
  if (!predictions) return predictions.error();
  return std::move(predictions->values);
}

void ModelSlot::set(std::shared_ptr<ServedModel> model) {
  std::lock_guard lock(mutex_);
  model_ = std::move(model);
}

std::shared_ptr<ServedModel> ModelSlot::current() const {
  std::lock_guard lock(mutex_);
  return model_;
}

}  // namespace shoal::serving
