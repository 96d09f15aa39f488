// DynamicBatcher: runs concurrent requests through the served model in
// batches, on one thread of its own.
//
// A batch starts when the thread is free and a request waits. It takes
// whole requests, oldest first, up to `max_batch` samples (a larger request
// runs alone), waiting at most `max_delay` after the oldest one arrived for
// more to fill it. With the default delay of zero a lone request runs at
// once, and requests that arrive while a batch runs make up the next one.
// The queue is bounded in samples: a request that would overfill it is
// refused at once, which the service answers with 503 and Retry-After.
//
// A request that finds nothing running or queued, with no delay to wait,
// runs at once on the caller's thread; all others run on the batcher's.
// One batch runs at a time either way.
//
// Each batch takes the slot's model once, at its start (served_model.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/serving/served_model.h"

namespace shoal::serving {

struct BatcherOptions {
  std::size_t max_batch = 32;                // samples per batch
  std::chrono::microseconds max_delay{0};    // how long the oldest request may wait for a fuller batch
  std::size_t max_queued_samples = 256;      // samples waiting, beyond which requests are refused
};

// What a request's samples gave: the raw outputs, and the model that ran them.
struct BatchAnswer {
  std::shared_ptr<const ModelInfo> model;
  std::vector<float> logits;   // samples x model->outputs
  std::size_t batch_samples = 0;  // the whole batch it ran in
};

class DynamicBatcher {
 public:
  // `on_batch(samples)` is called after each batch (for metrics); may be empty.
  DynamicBatcher(const ModelSlot& slot, BatcherOptions options, std::function<void(std::size_t)> on_batch = {});
  // Finishes the running batch; requests still queued get an error.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `samples` samples (`inputs` holds samples x the model's sample
  // values), or runs them at once on this thread when nothing else runs or
  // waits (the future is then ready on return). Empty when the queue is full. The future fails when no model
  // is loaded, when the inputs do not fit the model that runs them, or when
  // the model fails.
  std::optional<std::future<Result<BatchAnswer>>> submit(std::vector<float> inputs, std::size_t samples);

  std::size_t queued_samples() const;
  const BatcherOptions& options() const { return options_; }

 private:
  struct Pending {
    std::vector<float> inputs;
    std::size_t samples;
    std::chrono::steady_clock::time_point queued;
    std::promise<Result<BatchAnswer>> answer;
  };
  void run();
  std::vector<Pending> next_batch(std::unique_lock<std::mutex>& lock);
  void execute(std::vector<Pending>& batch);

  const ModelSlot& slot_;
  const BatcherOptions options_;
  std::function<void(std::size_t)> on_batch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::size_t queued_samples_ = 0;
  bool running_ = false;  // a batch runs, on either thread
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace shoal::serving
