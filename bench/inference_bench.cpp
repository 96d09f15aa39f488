// inference_bench: the prediction session against a bare libtorch forward on
// the same module weights and the same inputs, at batch 1 and batch 64
// (target: session time <= 1.05x bare). The bare path is what a libtorch user
// writes: from_blob, forward, softmax, argmax, under InferenceMode.
//
// Usage: inference_bench [--quick] [--model cnn | --model file.pt]
//   A TorchScript file must declare its `sample_shape` (see model.h), e.g.
//   tests/inference/fixtures/mobilenet_v2.pt, MobileNetV2 with BatchNorm.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <random>
#include <string>

#include "measure.h"
#include "shoal/inference/prediction_session.h"
#include "shoal/inference/torch_model.h"

using namespace shoal;
using shoal::bench::best_rates;

volatile float sink;

int main(int argc, char** argv) {
  bool quick = false;
  std::string model_name = "cnn";
  CLI::App app{"prediction session vs bare libtorch"};
  app.add_flag("--quick", quick, "short runs, for a smoke test");
  app.add_option("--model", model_name, "zoo model or TorchScript file");
  CLI11_PARSE(app, argc, argv);
  if (!inference::set_cpu_threads(0)) return 1;
  auto bare = inference::Model::open(model_name, 1);
  if (!bare || bare->sample_shape().empty()) {
    std::fprintf(stderr, "cannot build model '%s': %s\n", model_name.c_str(),
                 bare ? "it declares no sample_shape" : bare.error().message.c_str());
    return 1;
  }
  auto session = inference::PredictionSession::open(*inference::Model::open(model_name, 1),
                                                    *inference::resolve_device("cpu"));
  if (!session) return 1;
  const auto sample_shape = bare->sample_shape();
  std::size_t sample_size = 1;
  for (auto dim : sample_shape) sample_size *= static_cast<std::size_t>(dim);
  bare->backend().train(false);
  std::printf("%s on cpu, %d libtorch thread(s)\n", bare->name().c_str(), torch::get_num_threads());
  std::printf("%-6s %16s %16s %8s\n", "batch", "bare us/batch", "session us/batch", "ratio");
  for (std::size_t batch : {std::size_t{1}, std::size_t{64}}) {
    std::vector<float> inputs(batch * sample_size);
    std::vector<std::int64_t> shape = {static_cast<std::int64_t>(batch)};
    shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
    for (auto& p : inputs) p = pixel(rng);
    const auto rates = best_rates(1, quick ? 0.1 : 1.0, quick ? 1 : 3,
                                  {[&] {
                                     torch::InferenceMode guard;
                                     auto input = torch::from_blob(inputs.data(), shape);
                                     auto probabilities = torch::softmax(bare->backend().forward(input), 1);
                                     sink = probabilities.argmax(1).to(torch::kFloat32).sum().item<float>();
                                   },
                                   [&] { sink = session->predict(inputs, batch)->values[0]; }});
    std::printf("%-6zu %16.1f %16.1f %7.3fx (target <= 1.05x)\n", batch, 1e6 / rates[0], 1e6 / rates[1],
                rates[0] / rates[1]);
  }
  return 0;
}
