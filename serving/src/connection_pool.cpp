#include "connection_pool.h"

namespace shoal::serving {

void ConnectionPool::enqueue(std::function<void()> serve) {
  std::unique_lock lock(mutex_);
  has_room_.wait(lock, [&] { return stopping_ || idle_ > waiting_.size() || threads_.size() < max_threads_; });
  if (stopping_) {  // cpp-httplib enqueues nothing after shutdown(); should it, the caller serves
    lock.unlock();
    serve();
    return;
  }
  waiting_.push_back(std::move(serve));
  if (idle_ >= waiting_.size()) {
    has_work_.notify_one();
  } else {
    threads_.emplace_back([this] { work(); });
  }
}

void ConnectionPool::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    ++idle_;
    has_room_.notify_one();
    has_work_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
    --idle_;
    if (waiting_.empty()) return;  // stopping, and nothing left to serve
    auto serve = std::move(waiting_.front());
    waiting_.pop_front();
    lock.unlock();
    serve();
    lock.lock();
  }
}

void ConnectionPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  has_work_.notify_all();
  has_room_.notify_all();
  for (auto& thread : threads) thread.join();
}

std::size_t ConnectionPool::threads() const {
  std::lock_guard lock(mutex_);
  return threads_.size();
}

}  // namespace shoal::serving
