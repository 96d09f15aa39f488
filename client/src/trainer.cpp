#include "shoal/client/trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "shoal/inference/torch_model.h"
#include "shoal/weights/vector_ops.h"

namespace shoal::client {
namespace {

Error invalid_plan(const std::string& field, const std::string& why) {
  return make_error(ErrorCode::invalid_argument, "training plan: " + field + " " + why);
}

Status check_fits(const inference::Model& model, const Dataset& data, std::span<const std::size_t> samples) {
  if (samples.empty()) return make_error(ErrorCode::invalid_argument, "the local dataset is empty");
  const auto& expected = model.sample_shape();
  if (!expected.empty() && expected != data.sample_shape) {
    return make_error(ErrorCode::invalid_argument, "model '" + model.name() + "' takes samples of shape " +
                                                       inference::format_shape(expected) + ", the dataset's samples are " +
                                                       inference::format_shape(data.sample_shape));
  }
  return ok_status();
}

// Copies the samples at `indices` into one batch tensor and its labels.
std::pair<torch::Tensor, torch::Tensor> make_batch(const Dataset& data, std::span<const std::size_t> indices,
                                                   const torch::Device& device) {
  std::vector<std::int64_t> shape = {static_cast<std::int64_t>(indices.size())};
  shape.insert(shape.end(), data.sample_shape.begin(), data.sample_shape.end());
  auto inputs = torch::empty(shape, torch::kFloat32);
  auto labels = torch::empty({static_cast<std::int64_t>(indices.size())}, torch::kInt64);
  float* in = inputs.data_ptr<float>();
  std::int64_t* out = labels.data_ptr<std::int64_t>();
  const std::size_t width = data.sample_size();
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const auto sample = data.sample(indices[i]);
    std::copy(sample.begin(), sample.end(), in + i * width);
    out[i] = data.labels[indices[i]];
  }
  return {inputs.to(device), labels.to(device)};
}

// Checked on the first batch's output, before libtorch fails deep inside the loss.
Status check_labels(const torch::Tensor& output, const Dataset& data, std::span<const std::size_t> samples) {
  const auto classes = output.size(1);
  std::int64_t largest = 0;
  for (const auto index : samples) largest = std::max(largest, data.labels[index]);
  if (largest >= classes) {
    return make_error(ErrorCode::invalid_argument, "a label is " + std::to_string(largest) + " but the model has only " +
                                                       std::to_string(classes) + " outputs");
  }
  return ok_status();
}

}  // namespace

Status TrainingPlan::validate() const {
  if (epochs < 1) return invalid_plan("epochs", "must be at least 1");
  if (batch_size < 1) return invalid_plan("batch_size", "must be at least 1");
  if (!(learning_rate > 0.0f) || !std::isfinite(learning_rate)) return invalid_plan("learning_rate", "must be positive");
  if (!(momentum >= 0.0f && momentum < 1.0f)) return invalid_plan("momentum", "must be in [0, 1)");
  if (!(weight_decay >= 0.0f) || !std::isfinite(weight_decay)) return invalid_plan("weight_decay", "must be >= 0");
  if (!(proximal_mu >= 0.0f) || !std::isfinite(proximal_mu)) return invalid_plan("proximal_mu", "must be >= 0");
  return ok_status();
}

namespace {

// Sums a batch's loss and correct predictions into running figures.
struct RunningFigures {
  double loss_sum = 0;
  std::size_t correct = 0;
  std::size_t samples = 0;

  void add(const torch::Tensor& output, const torch::Tensor& labels, const torch::Tensor& mean_loss) {
    loss_sum += mean_loss.item<double>() * static_cast<double>(labels.size(0));
    correct += static_cast<std::size_t>(output.argmax(1).eq(labels).sum().item<std::int64_t>());
    samples += static_cast<std::size_t>(labels.size(0));
  }
  Evaluation evaluation() const {
    const auto n = static_cast<double>(samples);
    return Evaluation{loss_sum / n, static_cast<double>(correct) / n, samples};
  }
};

std::vector<std::size_t> every_sample(const Dataset& data) {
  std::vector<std::size_t> all(data.size());
  std::iota(all.begin(), all.end(), 0);
  return all;
}

}  // namespace

Result<Evaluation> evaluate(inference::Model& model, const Dataset& data, std::size_t batch_size) {
  return evaluate(model, data, every_sample(data), batch_size);
}

Result<Evaluation> evaluate(inference::Model& model, const Dataset& data, std::span<const std::size_t> samples,
                            std::size_t batch_size) {
  if (auto status = check_fits(model, data, samples); !status) return status.error();
  try {
    auto& backend = model.backend();
    backend.train(false);
    torch::NoGradGuard no_grad;
    const auto device = inference::to_torch(model.device());
    double loss_sum = 0;
    std::size_t correct = 0;
    for (std::size_t start = 0; start < samples.size(); start += batch_size) {
      const auto indices = samples.subspan(start, std::min(batch_size, samples.size() - start));
      auto [inputs, labels] = make_batch(data, indices, device);
      const auto output = backend.forward(inputs);
      if (start == 0) {
        if (auto status = check_labels(output, data, samples); !status) return status.error();
      }
      loss_sum += torch::nn::functional::cross_entropy(
                      output, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      correct += static_cast<std::size_t>(output.argmax(1).eq(labels).sum().item<std::int64_t>());
    }
    const auto n = static_cast<double>(samples.size());
    return Evaluation{loss_sum / n, static_cast<double>(correct) / n, samples.size()};
  } catch (const c10::Error& e) {
    return make_error(ErrorCode::invalid_argument, "evaluating '" + model.name() + "' failed: " + e.what_without_backtrace());
  }
}

Result<TrainingResult> train(inference::Model& model, const Dataset& data, const TrainingPlan& plan) {
  return train(model, data, every_sample(data), plan);
}

Result<TrainingResult> train(inference::Model& model, const Dataset& data, std::span<const std::size_t> samples,
                             const TrainingPlan& plan) {
  if (auto status = plan.validate(); !status) return status.error();
  if (auto status = check_fits(model, data, samples); !status) return status.error();
  TrainingResult result;
  if (plan.evaluate_before_after) {
    auto before = evaluate(model, data, samples);
    if (!before) return before.error();
    result.before = *before;
  }
  RunningFigures last_epoch;
  const auto global = model.get_weights(0);
  try {
    auto& backend = model.backend();
    const auto device = inference::to_torch(model.device());
    std::vector<torch::Tensor> parameters, anchors;
    for (auto& [name, tensor] : backend.named_parameters()) {
      parameters.push_back(tensor);
      // w_global for the proximal term; plain FedAvg training needs no copy.
      if (plan.proximal_mu > 0.0f) anchors.push_back(tensor.detach().clone());
    }
    torch::optim::SGD optimizer(parameters, torch::optim::SGDOptions(plan.learning_rate)
                                                .momentum(plan.momentum)
                                                .weight_decay(plan.weight_decay));
    torch::manual_seed(plan.seed);
    std::mt19937_64 shuffle_rng(plan.seed);
    // Shuffled positions into `samples`, so an epoch's order does not depend on which indices a device holds.
    std::vector<std::size_t> order(samples.size());
    std::iota(order.begin(), order.end(), 0);
    std::vector<std::size_t> batch_indices;
    backend.train(true);
    for (int epoch = 0; epoch < plan.epochs; ++epoch) {
      std::shuffle(order.begin(), order.end(), shuffle_rng);
      const bool last = epoch + 1 == plan.epochs;
      for (std::size_t start = 0; start < order.size(); start += plan.batch_size) {
        const std::size_t count = std::min(plan.batch_size, order.size() - start);
        batch_indices.resize(count);
        for (std::size_t i = 0; i < count; ++i) batch_indices[i] = samples[order[start + i]];
        auto [inputs, labels] = make_batch(data, batch_indices, device);
        optimizer.zero_grad();
        const auto output = backend.forward(inputs);
        if (epoch == 0 && start == 0) {
          if (auto status = check_labels(output, data, samples); !status) return status.error();
        }
        auto loss = torch::nn::functional::cross_entropy(output, labels);
        if (last && !plan.evaluate_before_after) last_epoch.add(output.detach(), labels, loss.detach());
        if (plan.proximal_mu > 0.0f) {
          auto proximal = torch::zeros({}, loss.options());
          for (std::size_t i = 0; i < parameters.size(); ++i) proximal = proximal + (parameters[i] - anchors[i]).pow(2).sum();
          loss = loss + 0.5f * plan.proximal_mu * proximal;
        }
        loss.backward();
        optimizer.step();
      }
    }
  } catch (const c10::Error& e) {
    return make_error(ErrorCode::invalid_argument, "training '" + model.name() + "' failed: " + e.what_without_backtrace());
  }
  if (plan.evaluate_before_after) {
    auto after = evaluate(model, data, samples);
    if (!after) return after.error();
    result.after = *after;
  } else {
    result.after = last_epoch.evaluation();
  }
  const auto local = model.get_weights(0);
  result.update.resize(local.values().size());
  weights::subtract(local.values(), global.values(), result.update);
  result.samples = samples.size();
  return result;
}

}  // namespace shoal::client
