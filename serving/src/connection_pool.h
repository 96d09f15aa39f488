// ConnectionPool: the threads that serve cpp-httplib's connections, and a
// bound on the connections it holds. A thread is started only when every
// running one is busy, up to `max_threads`. Past that, enqueue() waits for
// one to come free, so cpp-httplib's accept loop stops taking connections
// and the ones waiting stay in the kernel's bounded listen backlog.
// cpp-httplib's own ThreadPool queues every accepted connection, so a
// flood of connections would cost a file descriptor and a queue entry each.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace shoal::serving {

class ConnectionPool : public httplib::TaskQueue {
 public:
  explicit ConnectionPool(std::size_t max_threads) : max_threads_(max_threads) {}
  ~ConnectionPool() override { shutdown(); }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Runs `serve` on a free thread; blocks while all max_threads are busy.
  void enqueue(std::function<void()> serve) override;
  // Serves what was enqueued, then joins the threads.
  void shutdown() override;

  std::size_t threads() const;

 private:
  void work();

  const std::size_t max_threads_;
  mutable std::mutex mutex_;
  std::condition_variable has_work_, has_room_;
  std::deque<std::function<void()>> waiting_;  // never more than the idle threads
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace shoal::serving
