#include "shoal/simulations/trainer_pool.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>

#include "shoal/client/trainer.h"

using namespace shoal;
using simulations::TrainerPool;

namespace {

// The update of a logreg trained on `data` from `start`, on some worker's model.
std::vector<float> update_on(TrainerPool& pool, const weights::Weights& start, const client::Dataset& data) {
  std::vector<float> update;
  auto ticket = pool.submit({1.0, 0}, [&](inference::Model& model) {
    REQUIRE(model.set_weights(start));
    client::TrainingPlan plan;
    plan.evaluate_before_after = false;
    auto result = client::train(model, data, plan);
    REQUIRE(result);
    update = result->update;
  });
  REQUIRE(pool.wait(ticket));
  return update;
}

}  // namespace

TEST_CASE("a job's result is the same whatever the number of workers") {
  auto make = [] { return inference::Model::from_zoo("logreg", 3); };
  auto one = TrainerPool::create(1, make);
  auto two = TrainerPool::create(2, make);
  REQUIRE(one);
  REQUIRE(two);
  CHECK((*two)->workers() == 2);
  const auto start = (*make()).get_weights(0);
  client::SyntheticSpec spec;
  spec.samples = 256;
  const auto data = client::make_synthetic(spec);
  CHECK(update_on(**one, start, data) == update_on(**two, start, data));
}

TEST_CASE("queued jobs run earliest-due first, and a throwing job's failure reaches the waiter") {
  auto pool = TrainerPool::create(1, [] { return inference::Model::from_zoo("logreg", 0); });
  REQUIRE(pool);
  std::mutex order_mutex;
  std::vector<int> order;
  std::atomic<bool> release{false};
  // The first job holds the only worker until the others are queued.
  auto blocker = (*pool)->submit({0, 0}, [&](inference::Model&) {
    while (!release.load()) std::this_thread::yield();
  });
  std::vector<TrainerPool::Ticket> tickets;
  for (int due : {30, 10, 20}) {
    tickets.push_back((*pool)->submit({static_cast<double>(due), 1}, [&, due](inference::Model&) {
      std::lock_guard lock(order_mutex);
      order.push_back(due);
    }));
  }
  auto failing = (*pool)->submit({40, 2}, [](inference::Model&) { throw std::runtime_error("no memory left"); });
  release = true;
  for (auto& ticket : tickets) REQUIRE((*pool)->wait(ticket));
  CHECK(order == std::vector<int>{10, 20, 30});
  auto failure = (*pool)->wait(failing);
  REQUIRE_FALSE(failure);
  CHECK(failure.error().message == "a training job failed: no memory left");
  CHECK((*pool)->ready(blocker));
}
