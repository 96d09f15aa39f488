// The threads serving HTTP connections: started as needed, never more than
// the limit, and what waits for them is not queued without bound.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "connection_pool.h"  // serving/src: not part of the library's interface

using shoal::serving::ConnectionPool;

namespace {

// Tasks that hold their thread until released, counting how many run at once.
struct HeldTasks {
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0, most = 0, finished = 0;
  bool released = false;

  std::function<void()> task() {
    return [this] {
      std::unique_lock lock(mutex);
      most = std::max(most, ++running);
      changed.notify_all();
      changed.wait(lock, [&] { return released; });
      --running;
      ++finished;
      changed.notify_all();
    };
  }
};

}  // namespace

TEST_CASE("the connection pool starts threads only as needed and never more than its limit") {
  HeldTasks held;
  ConnectionPool pool(2);
  CHECK(pool.threads() == 0);
  pool.enqueue(held.task());
  pool.enqueue(held.task());
  {
    std::unique_lock lock(held.mutex);
    held.changed.wait(lock, [&] { return held.running == 2; });
  }
  CHECK(pool.threads() == 2);

  // A third connection waits for a thread: enqueue() does not return while both are held.
  std::atomic<bool> third_enqueued{false};
  std::thread acceptor([&] {
    pool.enqueue(held.task());
    third_enqueued = true;
  });
  {
    // Not synchronisation: a bounded look for a wrong early return.
    std::unique_lock lock(held.mutex);
    held.changed.wait_for(lock, std::chrono::milliseconds(200), [&] { return held.running > 2 || third_enqueued.load(); });
    CHECK(held.running == 2);
    CHECK_FALSE(third_enqueued.load());
    held.released = true;
  }
  held.changed.notify_all();
  acceptor.join();
  pool.shutdown();
  CHECK(held.finished == 3);
  CHECK(held.most == 2);
}
