// release_delta_bench: how small and how fast shoal's release deltas are, on
// real version pairs from federated training, beside the general-purpose
// binary delta tools run on the same weights files in the same run.
//
// For the zoo cnn (1.7M parameters) and mlp-large (11.9M), and a small CNN
// with two BatchNorm layers (TorchScript, its running statistics and batch
// counters in the weights), FedAvg rounds (2 devices, 256 Fashion-MNIST
// samples each, one local epoch) make versions v1 .. v11; the pairs are
// v1 → v2 (one round) and v1 → v11 (ten rounds).
// For each pair it prints, as fractions of the full weights file:
//   shoal lossless delta   beside zstd -19 --patch-from, xdelta3 -9, bsdiff
//                          (target: ≤ 0.75× the smallest of the three)
//   shoal lossy deltas     at several error bounds, with the test-accuracy
//                          change of the quantised version (target: ≤ 0.2×
//                          with a change under 0.1 point)
//   apply speed            MB/s of weights rebuilt, beside zstd decompressing
//                          the same number of bytes (target: ≥ 200 MB/s)
// A tool that is not installed (scripts/install-deps --bench) is reported as missing.
//
// Usage: release_delta_bench [--models cnn,mlp-large,FILE.pt] [--data /usr/share/datasets/fashion-mnist]
//        release_delta_bench --smoke    (the BatchNorm CNN, three rounds: v1 → v2 and v1 → v3)
#include <CLI/CLI.hpp>
#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "measure.h"
#include "shoal/client/trainer.h"
#include "shoal/inference/device.h"
#include "shoal/updater/delta_codec.h"
#include "shoal/weights/weights_file.h"

namespace fs = std::filesystem;
using namespace shoal;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "release_delta_bench: %s\n", message.c_str());
  std::exit(1);
}

void must(const Status& status) {
  if (!status) die(status.error().describe());
}

template <typename T>
T must(Result<T> result) {
  if (!result) die(result.error().describe());
  return std::move(result).value();
}

// Every `stride`-th sample from `first`: one device's shard.
client::Dataset shard(const client::Dataset& data, std::size_t first, std::size_t count, std::size_t stride) {
  std::vector<std::size_t> indices;
  for (std::size_t i = 0; i < count; ++i) indices.push_back((first + i * stride) % data.size());
  return data.subset(indices);
}

// Versions 0 .. rounds of `model_name` under FedAvg with two devices.
std::vector<weights::Weights> train_versions(const std::string& model_name, const client::Dataset& train_set,
                                             int rounds) {
  auto model = must(inference::Model::open(model_name, 7));
  std::vector<weights::Weights> versions{model.get_weights(0)};
  client::TrainingPlan plan;
  plan.learning_rate = 0.05f;
  plan.evaluate_before_after = false;
  const std::size_t devices = 2, samples = 256;
  for (int round = 1; round <= rounds; ++round) {
    weights::Weights sum(versions.back().layout(), static_cast<std::uint64_t>(round));
    for (std::size_t device = 0; device < devices; ++device) {
      if (!model.set_weights(versions.back())) die("set_weights");
      plan.seed = static_cast<std::uint64_t>(round * 10 + device);
      const auto data = shard(train_set, round * samples * devices + device, samples, devices);
      must(client::train(model, data, plan));
      const auto local = model.get_weights(0);
      for (std::size_t i = 0; i < sum.values().size(); ++i) sum.values()[i] += local.values()[i] / devices;
    }
    versions.push_back(std::move(sum));
  }
  return versions;
}

std::optional<std::uintmax_t> run_tool(const std::string& command, const fs::path& out) {
  if (std::system((command + " >/dev/null 2>&1").c_str()) != 0 || !fs::exists(out)) return std::nullopt;
  return fs::file_size(out);
}

double accuracy_of(inference::Model& model, const weights::Weights& weights, const client::Dataset& test_set) {
  if (!model.set_weights(weights)) die("set_weights");
  return must(client::evaluate(model, test_set)).accuracy;
}

void print_fraction(const char* name, std::optional<std::uintmax_t> size, double full) {
  if (size) {
    std::printf("  %-28s %10ju bytes  %.4f of the full file\n", name, *size, *size / full);
  } else {
    std::printf("  %-28s %10s\n", name, "(not installed or failed)");
  }
}

void compare_pair(const std::string& label, const weights::Weights& base, const weights::Weights& target,
                  inference::Model& model, const client::Dataset& test_set, const fs::path& dir, bool smoke) {
  const fs::path base_file = dir / "base.weights", target_file = dir / "target.weights";
  if (!weights::write_weights_file(base_file, base) || !weights::write_weights_file(target_file, target)) {
    die("cannot write weights files in " + dir.string());
  }
  const double full = static_cast<double>(fs::file_size(target_file));
  std::printf("%s: full weights file %.2f MB\n", label.c_str(), full / 1e6);

  auto start = Clock::now();
  const auto delta = must(updater::encode_delta(base, target));
  const double encode_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const std::string b = base_file.string(), t = target_file.string(), o = (dir / "out").string();
  fs::remove(dir / "out");
  const auto zstd = run_tool("zstd -19 -q -f --patch-from=" + b + " " + t + " -o " + o, dir / "out");
  fs::remove(dir / "out");
  const auto xdelta = run_tool("xdelta3 -9 -e -f -s " + b + " " + t + " " + o, dir / "out");
  fs::remove(dir / "out");
  const auto bsdiff = run_tool("bsdiff " + b + " " + t + " " + o, dir / "out");
  print_fraction("shoal delta (lossless)", delta.size(), full);
  print_fraction("zstd -19 --patch-from", zstd, full);
  print_fraction("xdelta3 -9", xdelta, full);
  print_fraction("bsdiff", bsdiff, full);
  std::optional<std::uintmax_t> smallest;
  for (const auto& size : {zstd, xdelta, bsdiff}) {
    if (size && (!smallest || *size < *smallest)) smallest = size;
  }
  if (smallest) {
    std::printf("  shoal / smallest tool: %.3f (target <= 0.75); encoded in %.1f s\n",
                static_cast<double>(delta.size()) / *smallest, encode_seconds);
  }

  const double exact_accuracy = accuracy_of(model, target, test_set);
  for (const float bound : {1e-5f, 3e-5f, 1e-4f, 3e-4f}) {
    const auto quantized = must(updater::quantize_towards(base, target, bound));
    const auto lossy = must(updater::encode_delta(base, quantized.weights, 19, quantized.step));
    const double change = 100.0 * (accuracy_of(model, quantized.weights, test_set) - exact_accuracy);
    std::printf("  lossy, bound %-8.0e %10zu bytes  %.4f of the full file, test accuracy %+.2f points\n", bound,
                lossy.size(), lossy.size() / full, change);
  }

  // Apply speed: weights rebuilt per second, beside plain zstd decompression
  // producing the same number of bytes (the floor of any zstd-based format).
  const auto target_bytes = weights::encode_weights(target);
  std::vector<std::uint8_t> compressed(ZSTD_compressBound(target_bytes.size()));
  compressed.resize(ZSTD_compress(compressed.data(), compressed.size(), target_bytes.data(), target_bytes.size(), 3));
  std::vector<std::uint8_t> scratch(target_bytes.size());
  const double weight_bytes = static_cast<double>(target.values().size_bytes());
  const auto rates = bench::best_rates(weight_bytes / 1e6, smoke ? 0.05 : 0.5, smoke ? 1 : 3,
                                       {[&] { must(updater::apply_delta(base, delta, "delta")); },
                                        [&] {
                                          ZSTD_decompress(scratch.data(), scratch.size(), compressed.data(),
                                                          compressed.size());
                                        }});
  std::printf("  apply: %.0f MB/s of weights (target >= 200); zstd -d of the same bytes %.0f MB/s: %.2fx\n",
              rates[0], rates[1], rates[0] / rates[1]);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> models{"cnn", "mlp-large", SHOAL_FIXTURES "/bn_cnn.pt"};
  fs::path data = "/usr/share/datasets/fashion-mnist";
  bool smoke = false;
  CLI::App app{"release delta sizes and apply speed on real version pairs"};
  app.add_option("--models", models, "zoo models or TorchScript files")->delimiter(',');
  app.add_flag("--smoke", smoke, "the BatchNorm CNN for three rounds, short timings: a check that it runs");
  app.add_option("--data", data, "directory of the Fashion-MNIST IDX files");
  fs::path keep;
  app.add_option("--keep", keep, "also write each model's versions v1, v2, v11 into this directory");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  const auto train_set = must(client::load_idx(data / "train-images-idx3-ubyte.gz", data / "train-labels-idx1-ubyte.gz"));
  const auto test_set = must(client::load_idx(data / "t10k-images-idx3-ubyte.gz", data / "t10k-labels-idx1-ubyte.gz"));
  if (!inference::set_cpu_threads(0)) die("set_cpu_threads");
  char pattern[] = "/tmp/shoal-delta-bench-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) die("mkdtemp");
  const fs::path dir = pattern;
  if (smoke) models = {SHOAL_FIXTURES "/bn_cnn.pt"};
  const int rounds = smoke ? 3 : 11;
  for (const auto& path : models) {
    const auto start = Clock::now();
    const auto versions = train_versions(path, train_set, rounds);
    auto model = must(inference::Model::open(path, 7));
    const auto& name = model.name();
    const auto& layout = versions[0].layout();
    std::printf("%s: %ju parameter values, %ju buffer values, %d FedAvg rounds trained in %.0f s\n", name.c_str(),
                static_cast<std::uintmax_t>(layout.parameter_value_count()),
                static_cast<std::uintmax_t>(layout.value_count() - layout.parameter_value_count()), rounds,
                std::chrono::duration<double>(Clock::now() - start).count());
    if (!keep.empty()) {
      fs::create_directories(keep);
      for (int v : {1, 2, rounds}) {
        must(weights::write_weights_file(keep / (name + "-v" + std::to_string(v) + ".weights"), versions[v]));
      }
    }
    compare_pair(name + " v1 -> v2 (one round)", versions[1], versions[2], model, test_set, dir, smoke);
    compare_pair(name + " v1 -> v" + std::to_string(rounds) + " (" + std::to_string(rounds - 1) + " rounds)",
                 versions[1], versions[rounds], model, test_set, dir, smoke);
  }
  fs::remove_all(dir);
  return 0;
}
