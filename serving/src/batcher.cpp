#include "shoal/serving/batcher.h"

namespace shoal::serving {

DynamicBatcher::DynamicBatcher(const ModelSlot& slot, BatcherOptions options,
                               std::function<void(std::size_t)> on_batch)
    : slot_(slot), options_(options), on_batch_(std::move(on_batch)), thread_([this] { run(); }) {}

DynamicBatcher::~DynamicBatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& pending : queue_) {
    pending.answer.set_value(make_error(ErrorCode::unsupported, "the inference service is stopping"));
  }
}

std::optional<std::future<Result<BatchAnswer>>> DynamicBatcher::submit(std::vector<float> inputs,
                                                                      std::size_t samples) {
  std::future<Result<BatchAnswer>> future;
  {
    std::unique_lock lock(mutex_);
    // An empty queue takes any one request, so a request over the bound is refused only while others wait.
    if (stopping_ || (queued_samples_ > 0 && queued_samples_ + samples > options_.max_queued_samples)) {
      return std::nullopt;
    }
    if (!running_ && queue_.empty() && options_.max_delay.count() == 0) {
      // Nothing runs or waits, and no batch is to be waited for: this request is a batch of its own, run on
      // the caller's thread, which spares it two thread switches. Requests arriving meanwhile queue for the next.
      running_ = true;
      lock.unlock();
      std::vector<Pending> batch;
      batch.push_back(Pending{std::move(inputs), samples, std::chrono::steady_clock::now(), {}});
      future = batch.front().answer.get_future();
      execute(batch);
      lock.lock();
      running_ = false;
      if (queue_.empty() && !stopping_) return future;  // no one to wake
    } else {
      queue_.push_back(Pending{std::move(inputs), samples, std::chrono::steady_clock::now(), {}});
      future = queue_.back().answer.get_future();
      queued_samples_ += samples;
    }
  }
  wake_.notify_one();
  return future;
}

std::size_t DynamicBatcher::queued_samples() const {
  std::lock_guard lock(mutex_);
  return queued_samples_;
}

std::vector<DynamicBatcher::Pending> DynamicBatcher::next_batch(std::unique_lock<std::mutex>& lock) {
  wake_.wait(lock, [&] { return !running_ && (stopping_ || !queue_.empty()); });
  if (queue_.empty()) return {};
  if (options_.max_delay.count() > 0) {
    wake_.wait_until(lock, queue_.front().queued + options_.max_delay,
                     [&] { return stopping_ || queued_samples_ >= options_.max_batch; });
  }
  std::vector<Pending> batch;
  std::size_t samples = 0;
  while (!queue_.empty() && (batch.empty() || samples + queue_.front().samples <= options_.max_batch)) {
    samples += queue_.front().samples;
    queued_samples_ -= queue_.front().samples;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return batch;
}

void DynamicBatcher::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    auto batch = next_batch(lock);
    if (batch.empty()) return;  // stopping, nothing queued
    running_ = true;
    lock.unlock();
    execute(batch);
    lock.lock();
    running_ = false;
  }
}

void DynamicBatcher::execute(std::vector<Pending>& batch) {
  std::size_t samples = 0;
  for (const auto& pending : batch) samples += pending.samples;
  const auto model = slot_.current();
  auto fail_all = [&](const Error& error) {
    for (auto& pending : batch) pending.answer.set_value(error);
  };
  if (!model) return fail_all(make_error(ErrorCode::not_found, "no model is loaded yet"));
  const auto& info = model->info();
  for (const auto& pending : batch) {
    // A request was checked against the model served when it arrived; a swap since may have changed the shape.
    if (pending.inputs.size() != pending.samples * info.sample_values) {
      return fail_all(make_error(ErrorCode::invalid_argument,
                                 "the served model changed to version " + std::to_string(info.version) +
                                     ", whose samples have " + std::to_string(info.sample_values) + " values"));
    }
  }
  Result<std::vector<float>> logits = make_error(ErrorCode::invalid_argument, "empty batch");
  if (batch.size() == 1) {
    logits = model->forward(batch.front().inputs, samples);
  } else {
    std::vector<float> inputs;
    inputs.reserve(samples * info.sample_values);
    for (const auto& pending : batch) inputs.insert(inputs.end(), pending.inputs.begin(), pending.inputs.end());
    logits = model->forward(inputs, samples);
  }
  if (!logits) return fail_all(logits.error());
  if (on_batch_) on_batch_(samples);
  const auto shared = model->shared_info();
  std::size_t row = 0;
  for (auto& pending : batch) {
    const auto begin = logits->begin() + static_cast<std::ptrdiff_t>(row * info.outputs);
    BatchAnswer answer{shared, std::vector<float>(begin, begin + static_cast<std::ptrdiff_t>(pending.samples * info.outputs)),
                       samples};
    row += pending.samples;
    pending.answer.set_value(std::move(answer));
  }
}

}  // namespace shoal::serving
