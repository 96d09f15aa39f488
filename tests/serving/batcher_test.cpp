// The dynamic batcher: batches up to max_batch, a bounded queue, and the
// slot's model taken once per batch.
#include <catch2/catch.hpp>

#include "served_logreg.h"
#include "shoal/serving/batcher.h"

using namespace shoal;
using namespace shoal::serving;
using shoal::testing::served_logreg;

namespace {

std::vector<float> samples(std::size_t count, float value) { return std::vector<float>(count * 784, value); }

}  // namespace

TEST_CASE("requests queued together run as one batch up to max_batch, each getting its rows") {
  ModelSlot slot;
  slot.set(served_logreg(1, 1));
  std::vector<std::size_t> batches;
  std::mutex mutex;
  BatcherOptions options{.max_batch = 6, .max_delay = std::chrono::seconds(10), .max_queued_samples = 64};
  DynamicBatcher batcher(slot, options, [&](std::size_t batch) {
    std::lock_guard lock(mutex);
    batches.push_back(batch);
  });
  // 2 + 4 fill the first batch (it closes when full, not after 10 s); 3 waits for the next.
  auto first = batcher.submit(samples(2, 0.1f), 2);
  auto second = batcher.submit(samples(4, 0.2f), 4);
  REQUIRE(first);
  REQUIRE(second);
  auto a = first->get();
  auto b = second->get();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->batch_samples == 6);
  CHECK(a->logits.size() == 2 * 10);
  CHECK(b->logits.size() == 4 * 10);
  // Rows follow the requests: the second request's rows are its own inputs' outputs.
  auto alone = served_logreg(1, 1)->forward(samples(1, 0.2f), 1);
  REQUIRE(alone.ok());
  for (std::size_t j = 0; j < 10; ++j) CHECK(b->logits[30 + j] == Approx((*alone)[j]).margin(1e-5));
  std::lock_guard lock(mutex);
  CHECK(batches == std::vector<std::size_t>{6});
}

TEST_CASE("a full queue refuses at once, and a request over the bound runs alone when nothing waits") {
  ModelSlot slot;
  slot.set(served_logreg(1, 1));
  BatcherOptions options{.max_batch = 100, .max_delay = std::chrono::seconds(30), .max_queued_samples = 4};
  auto batcher = std::make_unique<DynamicBatcher>(slot, options);
  auto first = batcher->submit(samples(2, 0.0f), 2);
  auto second = batcher->submit(samples(2, 0.0f), 2);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(batcher->queued_samples() == 4);
  CHECK_FALSE(batcher->submit(samples(1, 0.0f), 1));
  batcher.reset();  // stopping runs what is queued
  CHECK(first->get().ok());
  CHECK(second->get().ok());

  DynamicBatcher empty(slot, options);
  auto big = empty.submit(samples(8, 0.0f), 8);
  REQUIRE(big);
}

TEST_CASE("each batch takes the slot's model at its start, so a swap applies from the next batch") {
  ModelSlot slot;
  DynamicBatcher batcher(slot, BatcherOptions{});
  auto none = batcher.submit(samples(1, 0.5f), 1);
  REQUIRE(none);
  auto refused = none->get();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::not_found);

  slot.set(served_logreg(1, 1));
  auto before = batcher.submit(samples(1, 0.5f), 1)->get();
  slot.set(served_logreg(2, 2));
  auto after = batcher.submit(samples(1, 0.5f), 1)->get();
  REQUIRE(before.ok());
  REQUIRE(after.ok());
  CHECK(before->model->version == 1);
  CHECK(after->model->version == 2);
  CHECK(before->logits != after->logits);
}
