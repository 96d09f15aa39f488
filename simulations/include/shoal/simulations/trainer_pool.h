// TrainerPool: worker threads, each with a model instance of its own, that
// train and evaluate for simulated devices. A device holds only its data
// indices; a job loads the global model it trains from into the worker's
// instance. Jobs are taken in order of their key - the virtual time their
// result is due, then a sequence number - so the result the fleet engine
// needs first is computed first, while later ones queue behind it.
//
// Each worker runs libtorch on its own thread only (one intra-op thread),
// so a job's result does not depend on how many workers there are.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/inference/model.h"

namespace shoal::simulations {

class TrainerPool {
 public:
  using ModelFactory = std::function<Result<inference::Model>()>;
  using Task = std::function<void(inference::Model& model)>;
  struct Key {
    double due = 0;          // virtual seconds
    std::uint64_t sequence = 0;
    bool operator>(const Key& other) const {
      return due != other.due ? due > other.due : sequence > other.sequence;
    }
  };
  class Job;
  using Ticket = std::shared_ptr<Job>;

  // Builds one model per worker (0 workers: one per core).
  static Result<std::unique_ptr<TrainerPool>> create(std::size_t workers, const ModelFactory& make_model);
  ~TrainerPool();
  TrainerPool(const TrainerPool&) = delete;
  TrainerPool& operator=(const TrainerPool&) = delete;

  std::size_t workers() const { return threads_.size(); }
  // Queues `task`; it runs on some worker's model.
  Ticket submit(Key key, Task task);
  // Blocks until the job has run. Returns the failure of a task that threw
  // (out of memory, say), or ok.
  Status wait(const Ticket& ticket);
  // Whether the job has run (wait() would not block).
  bool ready(const Ticket& ticket) const;
  // Seconds the workers have spent running tasks, all together.
  double busy_seconds() const;

 private:
  TrainerPool() = default;
  void work(inference::Model& model);

  struct Later {
    bool operator()(const Ticket& a, const Ticket& b) const;
  };
  mutable std::mutex mutex_;
  std::condition_variable wake_workers_;
  std::condition_variable job_done_;
  std::priority_queue<Ticket, std::vector<Ticket>, Later> queue_;
  bool stopping_ = false;
  double busy_seconds_ = 0;
  std::vector<inference::Model> models_;
  std::vector<std::thread> threads_;
};

}  // namespace shoal::simulations
