// centralised_bench: the sanity check under every federated figure. The zoo
// cnn trained centrally through shoal's trainer on the whole Fashion-MNIST
// training set must reach >= 0.90 test accuracy in 5 epochs (the FedAvg
// paper's CNN reaches ~0.92). Prints test accuracy after each epoch and the
// wall time; exits 1 when the target is missed.
//
// Usage: centralised_bench [--epochs 5] [--data /usr/share/datasets/fashion-mnist]
//        centralised_bench --smoke    (one epoch on 2,000 samples: a check that it runs, no target)
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "shoal/client/trainer.h"
#include "shoal/inference/device.h"

using namespace shoal;

int main(int argc, char** argv) {
  int epochs = 5;
  std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  CLI::App app{"zoo cnn trained centrally on Fashion-MNIST"};
  app.add_option("--epochs", epochs)->check(CLI::Range(1, 1000));
  app.add_option("--data", dir, "directory of the Fashion-MNIST IDX files");
  bool smoke = false;
  app.add_flag("--smoke", smoke, "one epoch on 2,000 samples, no accuracy target: a check that it runs");
  CLI11_PARSE(app, argc, argv);
  auto train_set = client::load_idx(dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz");
  auto test_set = client::load_idx(dir / "t10k-images-idx3-ubyte.gz", dir / "t10k-labels-idx1-ubyte.gz");
  if (!train_set || !test_set) {
    std::fprintf(stderr, "centralised_bench: %s\n",
                 (train_set ? test_set.error() : train_set.error()).message.c_str());
    return 1;
  }
  if (smoke) {
    std::vector<std::size_t> first(2000);
    for (std::size_t i = 0; i < first.size(); ++i) first[i] = i;
    train_set = train_set->subset(first);
    test_set = test_set->subset(first);
    epochs = 1;
  }
  if (!inference::set_cpu_threads(0)) return 1;
  auto model = *inference::Model::from_zoo("cnn", 0);
  client::TrainingPlan plan;
  plan.batch_size = 32;
  plan.learning_rate = 0.02f;
  plan.momentum = 0.9f;
  plan.evaluate_before_after = false;
  std::printf("zoo cnn, %zu training samples, batch %zu, lr %.3g, momentum %.2g, %d libtorch thread(s)\n",
              train_set->size(), plan.batch_size, plan.learning_rate, plan.momentum, inference::cpu_threads());

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  double accuracy = 0;
  double train_seconds = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    plan.seed = static_cast<std::uint64_t>(epoch);
    const auto epoch_start = Clock::now();
    if (auto trained = client::train(model, *train_set, plan); !trained) {
      std::fprintf(stderr, "centralised_bench: %s\n", trained.error().message.c_str());
      return 1;
    }
    train_seconds += std::chrono::duration<double>(Clock::now() - epoch_start).count();
    auto tested = client::evaluate(model, *test_set);
    if (!tested) {
      std::fprintf(stderr, "centralised_bench: %s\n", tested.error().message.c_str());
      return 1;
    }
    accuracy = tested->accuracy;
    std::printf("epoch %d: test accuracy %.4f, test loss %.4f, %.0f s training so far (%.0f samples/s)\n", epoch, accuracy,
                tested->loss, train_seconds, epoch * train_set->size() / train_seconds);
    std::fflush(stdout);
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const bool met = accuracy >= 0.90;
  std::printf("test accuracy %.4f after %d epochs in %.0f s wall (target >= 0.90: %s)\n", accuracy, epochs, wall,
              met ? "met" : "MISSED");
  return met || smoke ? 0 : 1;
}
