// aggregation_bench: folding updates into the round's running sum, against a
// plain `sum[i] += w * x[i]` loop over the same buffers in the same run
// (target: fold >= 0.95x the plain loop's GB/s at 10M parameters and more,
// where both are bound by memory; exits 1 below it, except with --quick). The fold also refuses NaN and
// infinite values, so it does strictly more work than the plain loop. It
// folds each update part by part (protocol::kUpdatePartValues values), as
// the aggregator does when the parts arrive.
//
// Usage: aggregation_bench [--quick] [--parameters 10000000]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <span>
#include <random>
#include <string>
#include <vector>

#include "measure.h"
#include "shoal/aggregator/update_fold.h"
#include "shoal/protocol/round_messages.h"

using namespace shoal;
using shoal::bench::best_rates;

namespace {

// What a reader would write without shoal; kept out of line so the compiler
// cannot fold it into the timing loop.
[[gnu::noinline]] void plain_fold(float w, const std::vector<float>& x, std::vector<float>& sum) {
  for (std::size_t i = 0; i < x.size(); ++i) sum[i] += w * x[i];
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::size_t parameters = 10'000'000;
  CLI::App app{"update fold vs a plain loop"};
  app.add_flag("--quick", quick, "short runs, for a smoke test");
  app.add_option("--parameters", parameters, "model size")->check(CLI::Range(1, 1'000'000'000));
  CLI11_PARSE(app, argc, argv);
  std::vector<float> update(parameters);
  std::mt19937 rng(1);
  std::normal_distribution<float> value(0.0f, 0.01f);
  for (auto& v : update) v = value(rng);
  std::vector<float> plain_sum(parameters, 0.0f);
  aggregator::WeightedMeanFold fold(parameters, protocol::kUpdatePartValues);
  auto fold_in_parts = [&] {
    const std::span<const float> values = update;
    for (std::size_t offset = 0; offset < parameters; offset += protocol::kUpdatePartValues) {
      const auto part = values.subspan(offset, std::min(protocol::kUpdatePartValues, parameters - offset));
      if (!fold.add_part(0, offset, part, 3.0)) std::abort();
    }
  };

  const double bytes = static_cast<double>(parameters) * sizeof(float);
  const auto rates = best_rates(bytes / 1e9, quick ? 0.1 : 2.0, quick ? 1 : 5,
                                {[&] { plain_fold(3.0f, update, plain_sum); },
                                 fold_in_parts});
  std::printf("fold of %zu-parameter updates (%.0f MB each)\n", parameters, bytes / 1e6);
  std::printf("%14s %14s %8s\n", "plain GB/s", "shoal GB/s", "ratio");
  constexpr double kTarget = 0.95;
  const double ratio = rates[1] / rates[0];
  std::printf("%14.2f %14.2f %7.3fx (shoal/plain, target >= %.2fx)\n", rates[0], rates[1], ratio, kTarget);
  // A quick run is too short to time reliably; it only shows that the bench still runs. A model that fits in
  // cache has no memory traffic to hide the fold's checks behind, so the target is for large ones.
  const bool judged = !quick && parameters >= 10'000'000;
  return !judged || ratio >= kTarget ? 0 : 1;
}
