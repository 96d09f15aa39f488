// Measurement for shoal's benchmarks: bodies compared in one run, with calls
// alternating between them (A B C A B C ...) and each body's time summed, so
// clock-speed drift on a busy or throttled machine hits every body alike and
// the ratios between them stay fair. The best of `rounds` runs is kept.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace shoal::bench {

// Rates in units/second for bodies that each do `work_per_call` units per call.
inline std::vector<double> best_rates(double work_per_call, double min_seconds, int rounds,
                                      const std::vector<std::function<void()>>& bodies) {
  using Clock = std::chrono::steady_clock;
  std::vector<double> best(bodies.size(), 0.0);
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> seconds(bodies.size(), 0.0);
    long calls = 0;
    while (*std::min_element(seconds.begin(), seconds.end()) < min_seconds) {
      for (std::size_t i = 0; i < bodies.size(); ++i) {
        const auto start = Clock::now();
        bodies[i]();
        seconds[i] += std::chrono::duration<double>(Clock::now() - start).count();
      }
      ++calls;
    }
    for (std::size_t i = 0; i < bodies.size(); ++i) best[i] = std::max(best[i], calls * work_per_call / seconds[i]);
  }
  return best;
}

}  // namespace shoal::bench
