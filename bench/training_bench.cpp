// training_bench: local training through shoal's trainer against a bare
// libtorch training loop on the same model, data, batch size and optimiser
// (target: trainer samples/s >= bare / 1.05). The bare loop is what a libtorch
// user writes: the dataset as one tensor, randperm, index_select, SGD.
// Both start each epoch from the same weights. The trainer runs with its
// before/after evaluation off, as that is extra work the bare loop does not do.
//
// Usage: training_bench [--quick] [--model cnn | --model file.pt] [--samples 1024] [--threads 0]
//   A TorchScript file must declare its `sample_shape` (see model.h), e.g.
//   tests/inference/fixtures/mobilenet_v2.pt, MobileNetV2 with BatchNorm.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "measure.h"
#include "shoal/client/trainer.h"
#include "shoal/inference/torch_model.h"

using namespace shoal;
using shoal::bench::best_rates;

namespace {

// One epoch of minibatch SGD over `inputs`/`labels`, the plain libtorch way.
void bare_epoch(inference::ModelBackend& module, const torch::Tensor& inputs, const torch::Tensor& labels,
                const client::TrainingPlan& plan, std::uint64_t seed) {
  std::vector<torch::Tensor> parameters;
  for (auto& [name, tensor] : module.named_parameters()) parameters.push_back(tensor);
  torch::optim::SGD optimizer(parameters, torch::optim::SGDOptions(plan.learning_rate).momentum(plan.momentum));
  torch::manual_seed(seed);
  module.train(true);
  const auto order = torch::randperm(inputs.size(0), torch::kInt64);
  const auto batch = static_cast<std::int64_t>(plan.batch_size);
  for (std::int64_t start = 0; start < inputs.size(0); start += batch) {
    const auto indices = order.slice(0, start, std::min(start + batch, inputs.size(0)));
    optimizer.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(module.forward(inputs.index_select(0, indices)),
                                                     labels.index_select(0, indices));
    loss.backward();
    optimizer.step();
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string model_name = "cnn";
  std::size_t samples = 1024;
  int threads = 0;  // one per core
  CLI::App app{"trainer vs a bare libtorch training loop"};
  app.add_flag("--quick", quick, "short runs, for a smoke test");
  app.add_option("--model", model_name, "zoo model or TorchScript file");
  app.add_option("--samples", samples, "synthetic samples per epoch")->check(CLI::Range(1, 10'000'000));
  app.add_option("--threads", threads, "libtorch CPU threads (0: one per core)")->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  if (!inference::set_cpu_threads(threads)) return 1;
  auto shoal_model = inference::Model::open(model_name, 1);
  auto bare_model = inference::Model::open(model_name, 1);
  if (!shoal_model || !bare_model || shoal_model->sample_shape().empty()) {
    std::fprintf(stderr, "cannot build model '%s': %s\n", model_name.c_str(),
                 shoal_model ? "it declares no sample_shape" : shoal_model.error().message.c_str());
    return 1;
  }
  client::SyntheticSpec spec;
  spec.samples = samples;
  spec.sample_shape = shoal_model->sample_shape();
  const auto data = client::make_synthetic(spec);
  std::vector<std::int64_t> shape = {static_cast<std::int64_t>(samples)};
  shape.insert(shape.end(), spec.sample_shape.begin(), spec.sample_shape.end());
  const auto inputs = torch::from_blob(const_cast<float*>(data.features.data()), shape).clone();
  const auto labels = torch::tensor(data.labels, torch::kInt64);

  const auto start = shoal_model->get_weights(0);
  client::TrainingPlan plan;
  plan.batch_size = 32;
  plan.learning_rate = 0.01f;
  plan.momentum = 0.9f;
  plan.evaluate_before_after = false;

  std::printf("%s on cpu, %d libtorch thread(s), %zu samples, batch %zu\n", shoal_model->name().c_str(),
              torch::get_num_threads(), samples, plan.batch_size);
  std::uint64_t epoch = 0;
  const auto rates = best_rates(static_cast<double>(samples), quick ? 0.1 : 5.0, quick ? 1 : 3,
                                {[&] {
                                   (void)bare_model->set_weights(start);
                                   bare_epoch(bare_model->backend(), inputs, labels, plan, ++epoch);
                                 },
                                 [&] {
                                   (void)shoal_model->set_weights(start);
                                   plan.seed = epoch;
                                   if (!client::train(*shoal_model, data, plan)) std::abort();
                                 }});
  std::printf("%16s %16s %8s\n", "bare samples/s", "shoal samples/s", "ratio");
  std::printf("%16.1f %16.1f %7.3fx (bare/shoal time, target <= 1.05x)\n", rates[0], rates[1], rates[0] / rates[1]);
  return 0;
}
