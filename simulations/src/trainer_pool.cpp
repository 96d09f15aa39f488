#include "shoal/simulations/trainer_pool.h"

#include <chrono>
#include <exception>

#include "shoal/inference/device.h"

namespace shoal::simulations {

class TrainerPool::Job {
 public:
  Job(Key key, Task task) : key(key), task(std::move(task)) {}
  Key key;
  Task task;
  bool done = false;
  std::string failure;
};

bool TrainerPool::Later::operator()(const Ticket& a, const Ticket& b) const { return a->key > b->key; }

Result<std::unique_ptr<TrainerPool>> TrainerPool::create(std::size_t workers, const ModelFactory& make_model) {
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  // One intra-op thread: results repeat whatever the number of workers.
  if (auto status = inference::set_cpu_threads(1); !status) return status.error();
  std::unique_ptr<TrainerPool> pool(new TrainerPool());
  pool->models_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i) {
    auto model = make_model();
    if (!model) return model.error();
    pool->models_.push_back(std::move(model).value());
  }
  for (auto& model : pool->models_) pool->threads_.emplace_back([&pool = *pool, &model] { pool.work(model); });
  return pool;
}

TrainerPool::~TrainerPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_workers_.notify_all();
  for (auto& thread : threads_) thread.join();
}

TrainerPool::Ticket TrainerPool::submit(Key key, Task task) {
  auto job = std::make_shared<Job>(key, std::move(task));
  {
    std::lock_guard lock(mutex_);
    queue_.push(job);
  }
  wake_workers_.notify_one();
  return job;
}

Status TrainerPool::wait(const Ticket& ticket) {
  std::unique_lock lock(mutex_);
  job_done_.wait(lock, [&] { return ticket->done; });
  if (!ticket->failure.empty()) return make_error(ErrorCode::io, "a training job failed: " + ticket->failure);
  return ok_status();
}

bool TrainerPool::ready(const Ticket& ticket) const {
  std::lock_guard lock(mutex_);
  return ticket->done;
}

double TrainerPool::busy_seconds() const {
  std::lock_guard lock(mutex_);
  return busy_seconds_;
}

void TrainerPool::work(inference::Model& model) {
  for (;;) {
    Ticket job;
    {
      std::unique_lock lock(mutex_);
      wake_workers_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.top();
      queue_.pop();
    }
    const auto start = std::chrono::steady_clock::now();
    std::string failure;
    try {
      job->task(model);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    job->task = nullptr;  // frees what it captured
    {
      std::lock_guard lock(mutex_);
      job->failure = std::move(failure);
      job->done = true;
      busy_seconds_ += seconds;
    }
    job_done_.notify_all();
  }
}

}  // namespace shoal::simulations
