// ServiceMetrics: what GET /metrics answers, in the Prometheus text format
// (version 0.0.4): requests and errors by endpoint and code, an infer
// latency histogram, a batch-size histogram, the served model and its
// version, and model swaps by cause. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "shoal/serving/served_model.h"

namespace shoal::serving {

// Why the served model changed.
enum class SwapCause { install, rollback, global_model, load };

class ServiceMetrics {
 public:
  // `endpoint` is a route's name ("infer", "health", "metadata", "metrics").
  void count_request(const std::string& endpoint, int status);
  void observe_infer_latency(std::chrono::nanoseconds latency);
  void observe_batch(std::size_t samples);
  void count_swap(SwapCause cause, const ModelInfo& now_serving);
  // A request the model failed to answer (not a bad request or a full queue).
  void count_inference_error() { inference_errors_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t inference_errors() const { return inference_errors_.load(std::memory_order_relaxed); }

  std::string prometheus_text(std::size_t queued_samples) const;

  std::uint64_t requests(const std::string& endpoint, int status) const;
  std::uint64_t swaps(SwapCause cause) const;

 private:
  static constexpr std::array<double, 14> kLatencyBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025,  0.05,    0.1,    0.25,  0.5,    1.0,  2.5};
  static constexpr std::array<double, 9> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

  template <std::size_t N>
  struct Histogram {
    std::array<std::uint64_t, N> buckets{};  // observations <= each bound (not cumulative here)
    std::uint64_t count = 0;
    double sum = 0;
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  Histogram<kLatencyBounds.size()> latency_;
  Histogram<kBatchBounds.size()> batches_;
  std::map<SwapCause, std::uint64_t> swaps_;
  std::atomic<std::uint64_t> inference_errors_{0};
  std::string model_name_;
  std::uint64_t model_version_ = 0;
  bool serving_ = false;
};

}  // namespace shoal::serving
