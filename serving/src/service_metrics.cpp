#include "shoal/serving/service_metrics.h"

#include <sstream>

namespace shoal::serving {
namespace {

const char* cause_name(SwapCause cause) {
  switch (cause) {
    case SwapCause::install: return "install";
    case SwapCause::rollback: return "rollback";
    case SwapCause::global_model: return "global_model";
    case SwapCause::load: return "load";
  }
  return "unknown";
}

template <std::size_t N, typename Histogram>
void write_histogram(std::ostringstream& out, const std::string& name, const std::array<double, N>& bounds,
                     const Histogram& histogram) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < N; ++i) {
    cumulative += histogram.buckets[i];
    out << name << "_bucket{le=\"" << bounds[i] << "\"} " << cumulative << "\n";
  }
  out << name << "_bucket{le=\"+Inf\"} " << histogram.count << "\n";
  out << name << "_sum " << histogram.sum << "\n";
  out << name << "_count " << histogram.count << "\n";
}

template <std::size_t N, typename Histogram>
void observe(Histogram& histogram, const std::array<double, N>& bounds, double value) {
  for (std::size_t i = 0; i < N; ++i) {
    if (value <= bounds[i]) {
      ++histogram.buckets[i];
      break;
    }
  }
  ++histogram.count;
  histogram.sum += value;
}

}  // namespace

void ServiceMetrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void ServiceMetrics::observe_infer_latency(std::chrono::nanoseconds latency) {
  std::lock_guard lock(mutex_);
  observe(latency_, kLatencyBounds, std::chrono::duration<double>(latency).count());
}

void ServiceMetrics::observe_batch(std::size_t samples) {
  std::lock_guard lock(mutex_);
  observe(batches_, kBatchBounds, static_cast<double>(samples));
}

void ServiceMetrics::count_swap(SwapCause cause, const ModelInfo& now_serving) {
  std::lock_guard lock(mutex_);
  ++swaps_[cause];
  model_name_ = now_serving.name;
  model_version_ = now_serving.version;
  serving_ = true;
}

std::uint64_t ServiceMetrics::requests(const std::string& endpoint, int status) const {
  std::lock_guard lock(mutex_);
  const auto found = requests_.find({endpoint, status});
  return found == requests_.end() ? 0 : found->second;
}

std::uint64_t ServiceMetrics::swaps(SwapCause cause) const {
  std::lock_guard lock(mutex_);
  const auto found = swaps_.find(cause);
  return found == swaps_.end() ? 0 : found->second;
}

std::string ServiceMetrics::prometheus_text(std::size_t queued_samples) const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  out << "# HELP shoal_serving_requests_total Requests answered, by endpoint and HTTP status.\n"
         "# TYPE shoal_serving_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    out << "shoal_serving_requests_total{endpoint=\"" << key.first << "\",code=\"" << key.second << "\"} " << count
        << "\n";
  }
  out << "# HELP shoal_serving_request_errors_total Requests answered with a 4xx or 5xx status.\n"
         "# TYPE shoal_serving_request_errors_total counter\n";
  std::uint64_t errors = 0;
  for (const auto& [key, count] : requests_) errors += key.second >= 400 ? count : 0;
  out << "shoal_serving_request_errors_total " << errors << "\n";
  out << "# HELP shoal_serving_inference_errors_total Requests the model failed to answer.\n"
         "# TYPE shoal_serving_inference_errors_total counter\n"
         "shoal_serving_inference_errors_total " << inference_errors() << "\n";
  out << "# HELP shoal_serving_infer_latency_seconds Infer requests from decoding to the encoded answer.\n"
         "# TYPE shoal_serving_infer_latency_seconds histogram\n";
  write_histogram(out, "shoal_serving_infer_latency_seconds", kLatencyBounds, latency_);
  out << "# HELP shoal_serving_batch_samples Samples in each batch the model ran.\n"
         "# TYPE shoal_serving_batch_samples histogram\n";
  write_histogram(out, "shoal_serving_batch_samples", kBatchBounds, batches_);
  out << "# HELP shoal_serving_queued_samples Samples waiting for a batch.\n"
         "# TYPE shoal_serving_queued_samples gauge\n"
         "shoal_serving_queued_samples " << queued_samples << "\n";
  out << "# HELP shoal_serving_model_version The version of the model served.\n"
         "# TYPE shoal_serving_model_version gauge\n";
  if (serving_) out << "shoal_serving_model_version{model=\"" << model_name_ << "\"} " << model_version_ << "\n";
  out << "# HELP shoal_serving_model_swaps_total Changes of the served model, by cause.\n"
         "# TYPE shoal_serving_model_swaps_total counter\n";
  for (SwapCause cause : {SwapCause::load, SwapCause::install, SwapCause::rollback, SwapCause::global_model}) {
    const auto found = swaps_.find(cause);
    out << "shoal_serving_model_swaps_total{cause=\"" << cause_name(cause) << "\"} "
        << (found == swaps_.end() ? 0 : found->second) << "\n";
  }
  return out.str();
}

}  // namespace shoal::serving
