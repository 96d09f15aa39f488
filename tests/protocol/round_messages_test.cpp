#include "shoal/protocol/round_messages.h"

#include <catch2/catch.hpp>

#include <limits>

using namespace shoal::protocol;

namespace {

template <typename M>
Decoded<M> round_trip(const M& message, std::size_t payloads = 0) {
  std::vector<zmq::message_t> frames;
  for (std::size_t i = 0; i < payloads; ++i) frames.emplace_back(std::string(8, 'x'));
  auto envelope = decode_envelope(encode(message, std::move(frames)), Limits{});
  REQUIRE(envelope);
  return decode<M>(*envelope);
}

TrainTask sample_task() {
  TrainTask task{7, 3, 60'000, {}};
  task.plan = WirePlan{2, 64, 0.05, 0.9, 1e-4, 0.01, 99};
  return task;
}

UpdateReport sample_update() { return UpdateReport{7, 3, 600, 2.3, 0.1, 0.6, 0.8}; }

}  // namespace

TEST_CASE("round messages round-trip every field") {
  auto task = round_trip(sample_task(), 1);
  REQUIRE(task);
  CHECK(task->round == 7);
  CHECK(task->model_version == 3);
  CHECK(task->deadline_ms == 60'000);
  CHECK(task->plan.epochs == 2);
  CHECK(task->plan.batch_size == 64);
  CHECK(task->plan.learning_rate == 0.05);
  CHECK(task->plan.momentum == 0.9);
  CHECK(task->plan.weight_decay == 1e-4);
  CHECK(task->plan.proximal_mu == 0.01);
  CHECK(task->plan.seed == 99);

  auto update = round_trip(sample_update(), 1);
  REQUIRE(update);
  CHECK(update->base_version == 3);
  CHECK(update->samples == 600);
  CHECK(update->accuracy_after == 0.8);

  auto evaluate = round_trip(EvaluateTask{8, 4, 1000});
  REQUIRE(evaluate);
  CHECK(evaluate->model_version == 4);
  auto evaluation = round_trip(EvaluationReport{8, 4, 100, 0.5, 0.85});
  REQUIRE(evaluation);
  CHECK(evaluation->samples == 100);
  CHECK(evaluation->accuracy == 0.85);
}

TEST_CASE("an update part carries its offset, a whole number of parts in") {
  auto report = sample_update();
  report.offset = 3 * kUpdatePartValues;
  auto part = round_trip(report, 1);
  REQUIRE(part);
  CHECK(part->offset == 3 * kUpdatePartValues);
  report.offset = kUpdatePartValues + 5;
  auto misaligned = round_trip(report, 1);
  REQUIRE_FALSE(misaligned);
  CHECK(misaligned.error().fault == DecodeFault::invalid_value);
  CHECK(misaligned.error().field == "offset");
}

TEST_CASE("an update report without its update frame is refused") {
  auto update = round_trip(sample_update(), 0);
  REQUIRE_FALSE(update);
  CHECK(update.error().fault == DecodeFault::missing_frame);
  CHECK(update.error().field == "update");
}

TEST_CASE("out-of-range plan and report values are refused with the field named") {
  struct Case {
    const char* field;
    void (*damage)(TrainTask&);
  };
  const Case cases[] = {
      {"deadline_ms", [](TrainTask& t) { t.deadline_ms = 0; }},
      {"epochs", [](TrainTask& t) { t.plan.epochs = 0; }},
      {"batch_size", [](TrainTask& t) { t.plan.batch_size = 0; }},
      {"learning_rate", [](TrainTask& t) { t.plan.learning_rate = std::numeric_limits<double>::infinity(); }},
      {"momentum", [](TrainTask& t) { t.plan.momentum = 1.0; }},
      {"weight_decay", [](TrainTask& t) { t.plan.weight_decay = -1.0; }},
      {"proximal_mu", [](TrainTask& t) { t.plan.proximal_mu = std::numeric_limits<double>::quiet_NaN(); }},
  };
  for (const auto& c : cases) {
    auto task = sample_task();
    c.damage(task);
    auto decoded = round_trip(task);
    REQUIRE_FALSE(decoded);
    INFO(c.field << ": " << decoded.error().detail);
    CHECK(decoded.error().fault == DecodeFault::invalid_value);
    CHECK(decoded.error().field == c.field);
  }
  auto update = sample_update();
  update.samples = 0;
  CHECK(round_trip(update, 1).error().field == "samples");
  update = sample_update();
  update.accuracy_after = 1.5;
  CHECK(round_trip(update, 1).error().field == "accuracy_after");
  update = sample_update();
  update.loss_before = std::numeric_limits<double>::quiet_NaN();
  CHECK(round_trip(update, 1).error().field == "loss_before");
  CHECK(round_trip(EvaluationReport{8, 4, 100, 0.5, -0.1}).error().field == "accuracy");
}
