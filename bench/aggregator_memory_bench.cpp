// aggregator_memory_bench: peak memory of the aggregator's round logic over a
// whole round, for cohorts of 10 and 1000 updates of a 10M-parameter model
// (target: <= 3x the model's size in both). Each cohort runs in a fresh
// child process, whose peak resident set the parent reads from wait4().
//
// The round is driven through RoundCoordinator as the server drives it:
// hello from every device, the tasks go out, then each update arrives part
// by part (protocol::kUpdatePartValues values each), every part its own
// buffer as a received message would be, folded and freed. The figure is
// the child's peak RSS, printed raw and above its baseline before the model
// existed (the process's code and libraries). The floor is two models: the
// global weights and the running sum.
//
// Usage: aggregator_memory_bench [--parameters 10000000] [--cohorts 10,1000]
//        aggregator_memory_bench --smoke    (1M parameters, cohort 10)
#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "shoal/aggregator/round_coordinator.h"

using namespace shoal;
using namespace shoal::aggregator;

namespace {

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Runs one round with `cohort` devices; returns 0 when every update was folded and applied.
int run_round(std::size_t parameters, std::size_t cohort) {
  auto layout = weights::Layout::create({{"w", {static_cast<std::int64_t>(parameters)}}});
  if (!layout) return 1;
  weights::Weights global(*layout, 0);
  RoundConfig config;
  config.min_devices = cohort;
  config.max_devices = cohort;
  config.secure.enabled = false;  // the plain streaming mean; secure rounds hold masked inputs (issue of their own)
  auto optimizer = ServerOptimizer::create({}, parameters);
  auto coordinator = RoundCoordinator::create(config, std::move(global), std::move(optimizer).value(), 0);
  if (!coordinator) return 1;
  const auto now = Clock::now();
  for (std::size_t d = 0; d < cohort; ++d) coordinator->on_hello("device-" + std::to_string(d), {"bench", 1, true}, now);
  coordinator->on_tick(now);
  (void)coordinator->take_outgoing();
  for (std::size_t d = 0; d < cohort; ++d) {
    const float value = 0.001f * static_cast<float>(d % 7);
    protocol::UpdateReport report{1, 0, 100, 1, 0.1, 1, 0.1};
    for (report.offset = 0; report.offset < parameters; report.offset += protocol::kUpdatePartValues) {
      const std::size_t values = std::min(protocol::kUpdatePartValues, parameters - report.offset);
      std::vector<std::uint8_t> payload(values * sizeof(float));  // one received part at a time
      for (std::size_t i = 0; i < values; ++i) std::memcpy(&payload[i * sizeof(float)], &value, sizeof value);
      if (coordinator->on_update("device-" + std::to_string(d), report, payload, now)) return 1;
    }
  }
  const auto finished = coordinator->take_finished();
  return finished.size() == 1 && finished[0].applied ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t parameters = 10'000'000;
  std::vector<std::size_t> cohorts = {10, 1000};
  CLI::App app{"aggregator peak memory over a round"};
  app.add_option("--parameters", parameters, "model size")->check(CLI::Range(1, 1'000'000'000));
  app.add_option("--cohorts", cohorts, "cohort sizes, one child process each")->delimiter(',');
  bool smoke = false;
  app.add_flag("--smoke", smoke, "1M parameters, cohort 10: a check that it runs");
  CLI11_PARSE(app, argc, argv);
  if (smoke) {
    parameters = 1'000'000;
    cohorts = {10};
  }

  const double model_mb = static_cast<double>(parameters) * sizeof(float) / 1e6;
  std::printf("round of a %zu-parameter model (%.0f MB), streaming weighted mean (fedavg)\n", parameters, model_mb);
  std::printf("%8s %14s %16s %14s %20s\n", "cohort", "peak RSS MB", "baseline MB", "x model", "above baseline x");
  for (const auto cohort : cohorts) {
    int channel[2];
    if (pipe(channel) != 0) return 1;
    const pid_t child = fork();
    if (child == 0) {
      close(channel[0]);
      const long baseline = peak_rss_kb();
      const int status = run_round(parameters, cohort);
      if (write(channel[1], &baseline, sizeof baseline) != sizeof baseline) _exit(1);
      _exit(status);
    }
    close(channel[1]);
    long baseline_kb = 0;
    const bool read_baseline = read(channel[0], &baseline_kb, sizeof baseline_kb) == sizeof baseline_kb;
    close(channel[0]);
    int status = 0;
    rusage usage{};
    wait4(child, &status, 0, &usage);
    if (!read_baseline || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "cohort %zu: the round failed\n", cohort);
      return 1;
    }
    const double peak_mb = static_cast<double>(usage.ru_maxrss) * 1024 / 1e6;
    const double baseline_mb = static_cast<double>(baseline_kb) * 1024 / 1e6;
    std::printf("%8zu %14.1f %16.1f %14.2f %20.2f\n", cohort, peak_mb, baseline_mb, peak_mb / model_mb,
                (peak_mb - baseline_mb) / model_mb);
  }
  return 0;
}
