// The round state machine fed messages and clock ticks by hand.
#include "shoal/aggregator/round_coordinator.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "shoal/crypto/key_file.h"

using namespace shoal;
using namespace shoal::aggregator;
using namespace std::chrono_literals;

namespace {

const Clock::time_point t0{};

weights::Weights global_model() {
  auto layout = *weights::Layout::create({{"w", {3}}});
  return *weights::Weights::from_values(layout, 5, {1.0f, 2.0f, 3.0f});
}

RoundConfig small_config() {
  RoundConfig config;
  config.min_devices = 2;
  config.max_devices = 10;
  config.train_deadline = 10s;
  config.device_timeout = 60s;
  config.secure.enabled = false;  // plain mode; secure rounds have tests of their own
  return config;
}

RoundCoordinator coordinator(const RoundConfig& config = small_config()) {
  return *RoundCoordinator::create(config, global_model(), *ServerOptimizer::create({}, 3), 0);
}

std::vector<std::uint8_t> bytes(const std::vector<float>& values) {
  std::vector<std::uint8_t> out(values.size() * sizeof(float));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

protocol::UpdateReport report(std::uint64_t round, std::uint64_t samples, std::uint64_t base = 5) {
  return protocol::UpdateReport{round, base, samples, 2.0, 0.1, 1.0, 0.5};
}

// Connects `names` (eligible, holding `version`) and starts a round.
void connect_and_start(RoundCoordinator& c, const std::vector<std::string>& names, std::uint64_t version = 5) {
  for (const auto& name : names) c.on_hello(name, protocol::Hello{"test", version, true}, t0);
  c.on_tick(t0);
  REQUIRE(c.round_open());
}

std::size_t refusals(const std::vector<Outgoing>& outgoing) {
  return static_cast<std::size_t>(std::count_if(outgoing.begin(), outgoing.end(), [](const Outgoing& o) {
    return std::holds_alternative<protocol::Refusal>(o.message);
  }));
}

}  // namespace

TEST_CASE("a round sends tasks, folds updates and applies their sample-weighted mean") {
  auto c = coordinator();
  c.on_hello("behind", protocol::Hello{"test", 3, true}, t0);
  c.on_hello("current", protocol::Hello{"test", 5, true}, t0);
  c.on_tick(t0);
  const auto sent = c.take_outgoing();
  std::map<std::string, bool> with_model;
  for (const auto& o : sent) {
    if (std::holds_alternative<protocol::TrainTask>(o.message)) with_model[o.device] = o.with_model;
  }
  CHECK(with_model == std::map<std::string, bool>{{"behind", true}, {"current", false}});

  REQUIRE_FALSE(c.on_update("behind", report(1, 100), bytes({1.0f, 0.0f, -1.0f}), t0 + 1s));
  CHECK(c.round_open());
  REQUIRE_FALSE(c.on_update("current", report(1, 300), bytes({0.0f, 4.0f, 1.0f}), t0 + 2s));
  CHECK_FALSE(c.round_open());  // every member reported: closed without waiting for the deadline

  const auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].applied);
  CHECK(finished[0].version_before == 5);
  CHECK(finished[0].version_after == 6);
  CHECK(finished[0].reported == 2);
  CHECK(finished[0].samples == 400);
  CHECK(finished[0].seconds == 2.0);
  // mean = (100 * {1, 0, -1} + 300 * {0, 4, 1}) / 400 = {0.25, 3, 0.5}
  const auto values = c.global().values();
  CHECK(values[0] == Approx(1.25));
  CHECK(values[1] == Approx(5.0));
  CHECK(values[2] == Approx(3.5));
  CHECK(c.global().version() == 6);
}

TEST_CASE("late, duplicate, foreign-round, outsider, stale and wrong-layout updates are refused with reasons") {
  auto c = coordinator();
  connect_and_start(c, {"a", "b", "c", "d", "e"});
  c.on_hello("late-joiner", protocol::Hello{"test", 5, true}, t0 + 1s);
  c.take_outgoing();
  const auto good = bytes({0.1f, 0.1f, 0.1f});

  REQUIRE_FALSE(c.on_update("a", report(1, 10), good, t0 + 1s));
  auto duplicate = c.on_update("a", report(1, 10), good, t0 + 1s);
  REQUIRE(duplicate);
  CHECK(*duplicate == "duplicate update for round 1");
  auto foreign = c.on_update("b", report(7, 10), good, t0 + 1s);
  REQUIRE(foreign);
  CHECK(*foreign == "round 7 has not started; the open round is 1");
  auto outsider = c.on_update("late-joiner", report(1, 10), good, t0 + 1s);
  REQUIRE(outsider);
  CHECK(*outsider == "not in the cohort of round 1");
  auto stale = c.on_update("b", report(1, 10, 4), good, t0 + 1s);
  REQUIRE(stale);
  CHECK(*stale == "update trained from model version 4, the round's model is 5");
  auto short_update = c.on_update("c", report(1, 10), bytes({0.1f, 0.1f}), t0 + 1s);
  REQUIRE(short_update);
  CHECK(short_update->find("update part of 8 bytes at offset 0 does not fit layout") == 0);
  auto nan = c.on_update("d", report(1, 10), bytes({0.1f, std::nanf(""), 0.1f}), t0 + 1s);
  REQUIRE(nan);
  CHECK(nan->find("NaN or infinite value at index 1") != std::string::npos);
  CHECK(refusals(c.take_outgoing()) == 6);

  // A member whose update for the round was refused has no further update taken, and is told only once.
  auto again = c.on_update("b", report(1, 10), good, t0 + 2s);
  REQUIRE(again);
  CHECK(*again == "the update for round 1 was already refused");
  CHECK(refusals(c.take_outgoing()) == 0);

  // The last member to answer closes the round: two reported, three refused.
  REQUIRE_FALSE(c.on_update("e", report(1, 30), good, t0 + 2s));
  const auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].applied);
  CHECK(finished[0].reported == 2);
  CHECK(finished[0].stragglers == 0);
  CHECK(finished[0].rejected == 6);
  c.on_tick(t0 + 12s);  // the next round starts
  auto late = c.on_update("c", report(1, 10), good, t0 + 12s);
  REQUIRE(late);
  CHECK(*late == "round 1 is closed (the update is late); the open round is 2");
}

TEST_CASE("an update arrives in parts, each part's mean is weighted over the devices that delivered it") {
  const std::size_t size = protocol::kUpdatePartValues + 3;  // a whole part and a short one
  auto layout = *weights::Layout::create({{"w", {static_cast<std::int64_t>(size)}}});
  auto global = *weights::Weights::from_values(layout, 5, std::vector<float>(size, 0.0f));
  auto config = small_config();
  config.min_devices = 1;
  auto c = *RoundCoordinator::create(config, std::move(global), *ServerOptimizer::create({}, size), 0);
  connect_and_start(c, {"a", "b", "c", "d"});
  c.take_outgoing();
  auto part = [](std::uint64_t samples, std::uint64_t offset) {
    auto r = report(1, samples);
    r.offset = offset;
    return r;
  };
  const auto ones = bytes(std::vector<float>(protocol::kUpdatePartValues, 1.0f));
  const auto fives = bytes(std::vector<float>(protocol::kUpdatePartValues, 5.0f));

  // a: both parts, weight 10. b: only its first part, weight 30, then it goes quiet.
  REQUIRE_FALSE(c.on_update("a", part(10, 0), ones, t0 + 1s));
  REQUIRE_FALSE(c.on_update("a", part(10, protocol::kUpdatePartValues), bytes({2.0f, 2.0f, 2.0f}), t0 + 1s));
  REQUIRE_FALSE(c.on_update("b", part(30, 0), fives, t0 + 1s));
  // c skips its first part; d sends a first part of the wrong size.
  auto skipped = c.on_update("c", part(20, protocol::kUpdatePartValues), bytes({4.0f, 4.0f, 4.0f}), t0 + 1s);
  REQUIRE(skipped);
  CHECK(*skipped == "update part at offset 262144 out of order: the next is at 0");
  auto wrong_size = c.on_update("d", part(20, 0), bytes({4.0f}), t0 + 1s);
  REQUIRE(wrong_size);
  CHECK(wrong_size->find("update part of 4 bytes at offset 0 does not fit layout") == 0);
  CHECK(wrong_size->find("this part has 1048576 bytes") != std::string::npos);
  // b's second part claims another weight than its first.
  auto reweighted = c.on_update("b", part(31, protocol::kUpdatePartValues), bytes({2.0f, 2.0f, 2.0f}), t0 + 1s);
  REQUIRE(reweighted);
  CHECK(*reweighted == "update part says 31 samples, its first part said 30");

  c.on_tick(t0 + 2s);  // every member has reported or been refused: closed already
  const auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].applied);
  CHECK(finished[0].reported == 1);  // only a finished its update
  CHECK(finished[0].rejected == 3);
  CHECK(finished[0].samples == 10);
  const auto values = c.global().values();
  CHECK(values[0] == Approx((10 * 1.0 + 30 * 5.0) / 40));  // a and b delivered the first part
  CHECK(values[protocol::kUpdatePartValues - 1] == Approx(4.0));
  CHECK(values[protocol::kUpdatePartValues] == Approx(2.0));  // only a delivered the second
  CHECK(values[size - 1] == Approx(2.0));
}

TEST_CASE("a round with fewer reports than the minimum at its deadline is abandoned and nothing is applied") {
  auto config = small_config();
  config.min_devices = 3;
  auto c = coordinator(config);
  connect_and_start(c, {"a", "b", "c"});
  REQUIRE_FALSE(c.on_update("a", report(1, 10), bytes({9.0f, 9.0f, 9.0f}), t0 + 1s));
  REQUIRE_FALSE(c.on_update("b", report(1, 10), bytes({9.0f, 9.0f, 9.0f}), t0 + 1s));
  c.on_tick(t0 + 9s);
  CHECK(c.round_open());  // the deadline has not passed yet
  c.on_tick(t0 + 10s);
  const auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK_FALSE(finished[0].applied);
  CHECK(finished[0].abandon_reason == "2 of 3 devices reported by the deadline, at least 3 needed");
  CHECK(c.global().version() == 5);
  CHECK(c.global().values()[0] == 1.0f);
  // The next round gets a new number.
  c.on_heartbeat("c", 1, t0 + 10s);
  c.on_tick(t0 + 10s);
  REQUIRE(c.round_open());
  CHECK(c.rounds_started() == 2);
}

TEST_CASE("cohorts take only eligible, live devices, up to the fraction and the maximum") {
  auto config = small_config();
  config.fraction = 0.5;
  config.max_devices = 3;
  auto c = coordinator(config);
  for (int i = 0; i < 10; ++i) c.on_hello("d" + std::to_string(i), protocol::Hello{"test", 5, i < 8}, t0);
  c.on_hello("silent", protocol::Hello{"test", 5, true}, t0 - 120s);
  c.on_tick(t0);
  CHECK(c.connected_devices() == 10);  // "silent" timed out
  std::size_t tasks = 0;
  for (const auto& o : c.take_outgoing()) {
    if (!std::holds_alternative<protocol::TrainTask>(o.message)) continue;
    ++tasks;
    CHECK(o.device != "d8");
    CHECK(o.device != "d9");
    CHECK(o.device != "silent");
  }
  CHECK(tasks == 3);  // half of 8 eligible is 4, capped at 3

  auto too_few = coordinator();
  too_few.on_hello("only", protocol::Hello{"test", 5, true}, t0);
  too_few.on_hello("busy", protocol::Hello{"test", 5, false}, t0);
  too_few.on_tick(t0);
  CHECK_FALSE(too_few.round_open());
}

TEST_CASE("bad round settings are refused by name") {
  auto config = small_config();
  config.fraction = 0.0;
  auto refused = RoundCoordinator::create(config, global_model(), *ServerOptimizer::create({}, 3), 0);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "round config: fraction must be in (0, 1]");
  config = small_config();
  config.max_devices = 1;
  CHECK_FALSE(RoundCoordinator::create(config, global_model(), *ServerOptimizer::create({}, 3), 0));
  config = small_config();
  config.plan.weight_decay = -1;
  auto plan = RoundCoordinator::create(config, global_model(), *ServerOptimizer::create({}, 3), 0);
  REQUIRE_FALSE(plan);
  CHECK(plan.error().message == "round config: plan.weight_decay must be >= 0");
}

TEST_CASE("cohort members that go silent count as dropped, those still alive as stragglers") {
  auto config = small_config();
  config.min_devices = 1;
  config.device_timeout = 5s;
  config.train_deadline = 20s;
  auto c = coordinator(config);
  connect_and_start(c, {"a", "b", "c"});
  REQUIRE_FALSE(c.on_update("a", report(1, 10), bytes({1.0f, 1.0f, 1.0f}), t0 + 1s));
  c.on_heartbeat("b", 1, t0 + 18s);  // "c" says nothing after the task
  c.on_tick(t0 + 19s);
  CHECK(c.round_open());  // a silent cohort member is kept until the round closes
  c.on_tick(t0 + 20s);
  const auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].applied);
  CHECK(finished[0].stragglers == 1);
  CHECK(finished[0].dropped == 1);
}

TEST_CASE("a heartbeat from a device without a session asks it to say hello") {
  auto c = coordinator();
  c.on_heartbeat("stranger", 1, t0);
  const auto sent = c.take_outgoing();
  REQUIRE(sent.size() == 1);
  const auto* refusal = std::get_if<protocol::Refusal>(&sent[0].message);
  REQUIRE(refusal);
  CHECK(refusal->fault == "unknown device");
  CHECK(c.connected_devices() == 0);
}

TEST_CASE("evaluation rounds follow every evaluate_every applied rounds and weight devices by samples") {
  auto config = small_config();
  config.evaluate_every = 1;
  config.evaluation_deadline = 5s;
  auto c = coordinator(config);
  connect_and_start(c, {"a", "b", "c"});
  // Ineligible to train, still asked to evaluate; it already holds version 6.
  c.on_hello("d", protocol::Hello{"test", 6, false}, t0);
  for (const std::string device : {"a", "b", "c"}) {
    REQUIRE_FALSE(c.on_update(device, report(1, 10), bytes({1.0f, 1.0f, 1.0f}), t0 + 1s));
  }
  REQUIRE(c.evaluation_open());
  std::map<std::string, bool> asked;
  for (const auto& o : c.take_outgoing()) {
    if (const auto* task = std::get_if<protocol::EvaluateTask>(&o.message)) {
      CHECK(task->model_version == 6);
      CHECK(task->round == 1);
      asked[o.device] = o.with_model;
    }
  }
  // The cohort trained from version 5, so it needs version 6 sent along.
  CHECK(asked == std::map<std::string, bool>{{"a", true}, {"b", true}, {"c", true}, {"d", false}});

  c.on_tick(t0 + 2s);
  CHECK_FALSE(c.round_open());  // no training while the evaluation is open
  REQUIRE_FALSE(c.on_evaluation("a", protocol::EvaluationReport{1, 6, 100, 1.0, 0.5}, t0 + 2s));
  REQUIRE_FALSE(c.on_evaluation("d", protocol::EvaluationReport{1, 6, 300, 2.0, 0.9}, t0 + 2s));
  auto stale = c.on_evaluation("b", protocol::EvaluationReport{1, 5, 100, 1.0, 0.5}, t0 + 2s);
  REQUIRE(stale);
  CHECK(*stale == "no evaluation of round 1 (model version 5) is open");
  auto duplicate = c.on_evaluation("a", protocol::EvaluationReport{1, 6, 100, 1.0, 0.5}, t0 + 2s);
  REQUIRE(duplicate);
  CHECK(*duplicate == "duplicate evaluation for round 1");

  c.on_tick(t0 + 6s);  // deadline: "b" and "c" never answered
  CHECK_FALSE(c.evaluation_open());
  const auto evaluations = c.take_evaluations();
  REQUIRE(evaluations.size() == 1);
  CHECK(evaluations[0].asked == 4);
  CHECK(evaluations[0].reported == 2);
  CHECK(evaluations[0].samples == 400);
  CHECK(evaluations[0].loss == Approx(1.75));
  CHECK(evaluations[0].accuracy == Approx(0.8));
  CHECK_FALSE(c.round_open());  // round 1's record waits to be taken (and checkpointed)
  CHECK(c.take_finished().size() == 1);
  c.on_tick(t0 + 6s);
  CHECK(c.round_open());  // training resumes
}

TEST_CASE("a round waits for min_available connected devices") {
  auto config = small_config();
  config.min_available = 3;
  auto c = coordinator(config);
  c.on_hello("a", protocol::Hello{"test", 5, true}, t0);
  c.on_hello("b", protocol::Hello{"test", 5, true}, t0);
  c.on_tick(t0);
  CHECK_FALSE(c.round_open());  // min_devices (2) are there, min_available (3) are not
  c.on_hello("c", protocol::Hello{"test", 5, true}, t0);
  c.on_tick(t0);
  CHECK(c.round_open());
}

TEST_CASE("a revoked device leaves the open round, which closes on the others' updates") {
  auto c = coordinator();
  connect_and_start(c, {"a", "b", "c"});
  c.take_outgoing();
  REQUIRE_FALSE(c.on_update("a", report(1, 10), bytes({1.0f, 1.0f, 1.0f}), t0 + 1s));
  REQUIRE_FALSE(c.on_update("b", report(1, 10), bytes({1.0f, 1.0f, 1.0f}), t0 + 1s));
  CHECK(c.round_open());  // waiting for c
  c.on_revoked("c", t0 + 2s);
  CHECK_FALSE(c.round_open());
  const auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].applied);
  CHECK(finished[0].reported == 2);
  CHECK(finished[0].stragglers + finished[0].dropped == 0);
  CHECK(c.connected_devices() == 2);
  c.on_tick(t0 + 3s);
  for (const auto& o : c.take_outgoing()) CHECK(o.device != "c");  // never picked again
}

TEST_CASE("a secure round announces its parameters and refuses plain updates and misplaced secure messages") {
  auto config = small_config();
  config.secure.enabled = true;
  auto c = coordinator(config);
  std::vector<crypto::IdentityKeyPair> keys;
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) {
    keys.push_back(crypto::IdentityKeyPair::generate());
    names.push_back(crypto::format_ed25519_public(keys.back().public_identity().ed25519()));
  }
  // Before any round: a secure message is refused, with a reason.
  CHECK(c.on_advertise(names[0], protocol::AdvertiseKeys{1, {}, {}, {}}, t0) == "no secure round is open");
  connect_and_start(c, names);
  std::optional<protocol::TrainTask> task;
  for (auto& o : c.take_outgoing()) {
    if (auto* t = std::get_if<protocol::TrainTask>(&o.message)) task = *t;
  }
  REQUIRE(task);
  REQUIRE(task->secure);
  CHECK(task->secure->threshold == 2);  // k = min(n-1, 2*ceil(log2 3)) = 2, t = k/2 + 1
  CHECK(task->secure->bits == 32);
  CHECK(task->model_hash != std::array<std::uint8_t, 32>{});
  const auto values = bytes({0.1f, 0.2f, 0.3f});
  auto plain = c.on_update(names[0], report(task->round, 10), values, t0);
  REQUIRE(plain);
  CHECK_THAT(*plain, Catch::Contains("uses secure aggregation"));
  // Keys signed by someone else, and shares while keys are still being advertised.
  protocol::AdvertiseKeys forged{task->round, {}, {}, keys[1].sign(std::vector<std::uint8_t>{1})};
  forged.mask_key[0] = 1;
  CHECK_THAT(*c.on_advertise(names[0], forged, t0), Catch::Contains("not signed by the device's identity"));
  CHECK_THAT(*c.on_shares(names[0], protocol::ShareKeys{task->round, {}}, t0), Catch::Contains("in phase advertising keys"));
  CHECK(refusals(c.take_outgoing()) == 3);
}

TEST_CASE("each device's share of a secure round's noise is calibrated to the fewest inputs an applied round sums") {
  // Six devices: k = 5, t = 3; an applied round needs min_devices of them.
  auto share_of = [](std::size_t min_devices) {
    auto config = small_config();
    config.secure.enabled = true;
    config.min_devices = min_devices;
    config.privacy.clip_norm = 2.0;
    config.privacy.noise_multiplier = 1.5;
    auto c = coordinator(config);
    std::vector<std::string> names;
    for (int i = 0; i < 6; ++i) {
      names.push_back(crypto::format_ed25519_public(crypto::IdentityKeyPair::generate().public_identity().ed25519()));
    }
    connect_and_start(c, names);
    for (auto& o : c.take_outgoing()) {
      if (auto* task = std::get_if<protocol::TrainTask>(&o.message)) {
        REQUIRE(task->secure);
        CHECK(task->secure->threshold == 3);
        return task->privacy.noise_stddev;
      }
    }
    FAIL("no train task");
    return 0.0;
  };
  CHECK(share_of(2) == Approx(1.5 * 2.0 / std::sqrt(3.0)));  // t = 3 inputs at the least
  CHECK(share_of(5) == Approx(1.5 * 2.0 / std::sqrt(5.0)));  // min_devices = 5: each device adds less
}

TEST_CASE("no round starts that would spend more than the privacy budget") {
  auto config = small_config();
  config.privacy.clip_norm = 1.0;
  config.privacy.noise_multiplier = 0.5;
  config.privacy.epsilon_budget = 0.1;
  auto c = coordinator(config);
  for (const auto* name : {"a", "b", "c"}) c.on_hello(name, protocol::Hello{"test", 5, true}, t0);
  c.on_tick(t0);
  CHECK_FALSE(c.round_open());
  CHECK_THAT(c.stopped_reason(), Catch::Contains("privacy budget spent") && Catch::Contains("the budget is 0.1"));
}

TEST_CASE("the privacy spent and the adapted clip norm carry over into a restarted coordinator") {
  auto config = small_config();
  config.privacy.clip_norm = 1.0;
  config.privacy.noise_multiplier = 1.0;
  config.privacy.adaptive_clipping = true;
  config.privacy.clip_count_stddev = 1.0;
  auto c = coordinator(config);
  connect_and_start(c, {"a", "b"});
  REQUIRE_FALSE(c.on_update("a", report(1, 10), bytes({0.1f, 0.0f, 0.0f}), t0));
  REQUIRE_FALSE(c.on_update("b", report(1, 10), bytes({0.0f, 0.1f, 0.0f}), t0));
  REQUIRE(c.take_finished().at(0).applied);
  const double spent = c.accountant().spent(config.privacy.delta).epsilon;
  REQUIRE(spent > 0);
  REQUIRE(c.clip_norm() != 1.0);  // both were unclipped, above the target quantile: C moved
  const auto state = c.privacy_state();
  REQUIRE(state);

  auto restarted = coordinator(config);
  REQUIRE(restarted.restore_privacy(*state));
  CHECK(restarted.accountant().spent(config.privacy.delta).epsilon == spent);
  CHECK(restarted.clip_norm() == c.clip_norm());

  // A fixed clip norm comes from the config, not from the checkpoint.
  auto fixed_config = config;
  fixed_config.privacy.adaptive_clipping = false;
  auto fixed = coordinator(fixed_config);
  REQUIRE(fixed.restore_privacy(*state));
  CHECK(fixed.clip_norm() == 1.0);

  // RDP at orders this accountant does not use cannot be continued.
  auto other = coordinator(config);
  auto failed = other.restore_privacy(PrivacyState{{2.0, 3.0}, {0.1, 0.2}, 1.0});
  REQUIRE_FALSE(failed);
  CHECK_THAT(failed.error().message, Catch::Contains("RDP orders"));
  CHECK(other.accountant().rdp() == std::vector<double>(other.accountant().orders().size(), 0.0));

  // With a budget one round fits but two do not, the restarted coordinator
  // refuses the round a fresh one would start.
  auto budget_config = config;
  budget_config.privacy.epsilon_budget = spent * 1.01;
  auto fresh = coordinator(budget_config);
  connect_and_start(fresh, {"a", "b"});
  auto resumed = coordinator(budget_config);
  REQUIRE(resumed.restore_privacy(*state));
  for (const auto* name : {"a", "b"}) resumed.on_hello(name, protocol::Hello{"test", 5, true}, t0);
  resumed.on_tick(t0);
  CHECK_FALSE(resumed.round_open());
  CHECK_THAT(resumed.stopped_reason(), Catch::Contains("privacy budget spent"));
}

TEST_CASE("a coordinator without privacy has no privacy state to checkpoint") {
  auto c = coordinator();
  CHECK_FALSE(c.privacy_state());
}

TEST_CASE("with DP in plain mode, an update part past the clip norm is refused before it is folded") {
  const std::size_t size = protocol::kUpdatePartValues + 3;
  auto layout = *weights::Layout::create({{"w", {static_cast<std::int64_t>(size)}}});
  auto config = small_config();
  config.privacy.clip_norm = 1.0;
  config.privacy.noise_multiplier = 1e-6;  // noise far below what is checked
  config.min_devices = 1;
  auto c = *RoundCoordinator::create(config, *weights::Weights::from_values(layout, 5, std::vector<float>(size, 0.0f)),
                                     *ServerOptimizer::create({}, size), 0);
  connect_and_start(c, {"a", "b"});
  auto part = [](std::uint64_t offset) {
    auto r = report(1, 10);
    r.offset = offset;
    return r;
  };
  // a: a first part of norm 0.512, then a second that takes it to 1.115.
  REQUIRE_FALSE(c.on_update("a", part(0), bytes(std::vector<float>(protocol::kUpdatePartValues, 1e-3f)), t0));
  auto over = c.on_update("a", part(protocol::kUpdatePartValues), bytes({0.7f, 0.7f, 0.0f}), t0);
  REQUIRE(over);
  CHECK(*over == "the update's L2 norm reaches 1.115 by value 262147, above the round's clip norm 1");
  // b: norm exactly C, as a device's clipping leaves it.
  REQUIRE_FALSE(c.on_update("b", part(0), bytes(std::vector<float>(protocol::kUpdatePartValues, 0.0f)), t0));
  REQUIRE_FALSE(c.on_update("b", part(protocol::kUpdatePartValues), bytes({0.6f, 0.8f, 0.0f}), t0));
  const auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].applied);
  CHECK(finished[0].reported == 1);
  CHECK(finished[0].rejected == 1);
  // a's first part is folded, its second is not.
  CHECK(c.global().values()[0] == Approx(0.5e-3).margin(1e-4));
  CHECK(c.global().values()[protocol::kUpdatePartValues] == Approx(0.6).margin(1e-4));  // b's alone
}

namespace {

// One parameter, a running mean of two values and a batch counter.
weights::Weights batchnorm_global() {
  auto layout = *weights::Layout::create({{"w", {1}},
                                          {"bn.running_mean", {2}, weights::DType::float32, weights::TensorKind::buffer},
                                          {"bn.num_batches_tracked", {}, weights::DType::int64, weights::TensorKind::buffer}});
  return *weights::Weights::from_values(layout, 5, {1.0f, 0.0f, 0.0f, 10.0f});
}

}  // namespace

TEST_CASE("buffers take the devices' sample-weighted mean, counters rounded, while the optimiser steps parameters") {
  StrategyConfig momentum;
  momentum.kind = StrategyKind::fedavgm;
  momentum.server_learning_rate = 2.0f;
  const auto global = batchnorm_global();
  auto c = *RoundCoordinator::create(small_config(), global,
                                     *ServerOptimizer::create(momentum, global.layout().parameter_value_count()), 0);
  connect_and_start(c, {"a", "b"});
  // a's running mean became {1, 2} over 3 batches; b's {5, -2} over 4; weights 100 and 300.
  REQUIRE_FALSE(c.on_update("a", report(1, 100), bytes({1.0f, 1.0f, 2.0f, 3.0f}), t0 + 1s));
  REQUIRE_FALSE(c.on_update("b", report(1, 300), bytes({1.0f, 5.0f, -2.0f, 4.0f}), t0 + 1s));
  REQUIRE(c.take_finished().at(0).applied);
  const auto values = c.global().values();
  CHECK(values[0] == Approx(1.0 + 2.0 * 1.0));         // the parameter moved by η m = 2
  CHECK(values[1] == Approx((100 * 1.0 + 300 * 5.0) / 400));  // 4: the weighted mean, no η, no momentum
  CHECK(values[2] == Approx((100 * 2.0 - 300 * 2.0) / 400));  // -1
  CHECK(values[3] == 14.0f);  // 10 + 3.75, rounded to a whole count
}

TEST_CASE("differential privacy refuses a model with shared buffers and says what to use instead") {
  auto config = small_config();
  config.privacy.noise_multiplier = 1.0;
  config.privacy.clip_norm = 1.0;
  const auto global = batchnorm_global();
  auto refused = RoundCoordinator::create(config, global, *ServerOptimizer::create({}, 1), 0);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("BatchNorm running statistics") != std::string::npos);
  CHECK(refused.error().message.find("GroupNorm") != std::string::npos);
  CHECK(refused.error().message.find("FedBN") != std::string::npos);
}

TEST_CASE("tensors kept local (FedBN) are named in every task and keep the global values whatever devices send") {
  auto config = small_config();
  config.local_tensors = {"bn.*"};
  auto c = *RoundCoordinator::create(config, batchnorm_global(), *ServerOptimizer::create({}, 1), 0);
  CHECK(c.local_tensors() == std::vector<std::uint64_t>{1, 2});
  connect_and_start(c, {"a", "b"});
  for (const auto& o : c.take_outgoing()) {
    if (const auto* task = std::get_if<protocol::TrainTask>(&o.message)) {
      CHECK(task->local_tensors == std::vector<std::uint64_t>{1, 2});
    }
  }
  // b does not zero what it should keep: the server keeps its own values all the same.
  REQUIRE_FALSE(c.on_update("a", report(1, 100), bytes({1.0f, 0.0f, 0.0f, 0.0f}), t0 + 1s));
  REQUIRE_FALSE(c.on_update("b", report(1, 100), bytes({3.0f, 7.0f, 7.0f, 9.0f}), t0 + 1s));
  REQUIRE(c.take_finished().at(0).applied);
  const auto values = c.global().values();
  CHECK(values[0] == Approx(3.0));
  CHECK(values[1] == 0.0f);
  CHECK(values[2] == 0.0f);
  CHECK(values[3] == 10.0f);

  // With every buffer local, differential privacy has nothing it cannot cover.
  config.privacy.noise_multiplier = 1.0;
  config.privacy.clip_norm = 1.0;
  CHECK(RoundCoordinator::create(config, batchnorm_global(), *ServerOptimizer::create({}, 1), 0));
  config.local_tensors = {"bn.running_*"};  // the counter stays shared
  CHECK(RoundCoordinator::create(config, batchnorm_global(), *ServerOptimizer::create({}, 1), 0).error().message.find(
            "'bn.num_batches_tracked'") != std::string::npos);
  config.local_tensors = {"bm.*"};
  CHECK(RoundCoordinator::create(config, batchnorm_global(), *ServerOptimizer::create({}, 1), 0).error().message.find(
            "aggregation.local_tensors: pattern 'bm.*' matches no tensor") == 0);
}

TEST_CASE("a round whose mean or whose step is not finite is abandoned with the reason, and the model stays") {
  // One device's finite but huge update, weighted 2, overflows the float sum.
  auto c = coordinator();
  connect_and_start(c, {"a", "b"});
  REQUIRE_FALSE(c.on_update("a", report(1, 2), bytes({3e38f, 3e38f, 3e38f}), t0 + 1s));
  REQUIRE_FALSE(c.on_update("b", report(1, 100), bytes({0.1f, 0.1f, 0.1f}), t0 + 1s));
  auto finished = c.take_finished();
  REQUIRE(finished.size() == 1);
  CHECK_FALSE(finished[0].applied);
  CHECK(finished[0].abandon_reason == "the round's mean update is not finite: value 0 (w[0]) is infinite");
  CHECK(c.global().version() == 5);
  CHECK(std::vector<float>(c.global().values().begin(), c.global().values().end()) == std::vector<float>{1, 2, 3});

  // A finite mean that the server step carries past float's range.
  StrategyConfig steep;
  steep.server_learning_rate = 4.0f;
  auto d = *RoundCoordinator::create(small_config(), global_model(), *ServerOptimizer::create(steep, 3), 0);
  connect_and_start(d, {"a", "b"});
  REQUIRE_FALSE(d.on_update("a", report(1, 1), bytes({0.0f, 1e38f, 0.0f}), t0 + 1s));
  REQUIRE_FALSE(d.on_update("b", report(1, 1), bytes({0.0f, 1e38f, 0.0f}), t0 + 1s));
  finished = d.take_finished();
  CHECK(finished.at(0).abandon_reason ==
        "applying the round's mean would make the global model non-finite at value 1 (w[1])");
  CHECK(d.global().values()[1] == 2.0f);
  // The next round applies as if the bad one had never been.
  d.on_tick(t0 + 2s);
  REQUIRE(d.round_open());
  d.take_outgoing();
  REQUIRE_FALSE(d.on_update("a", report(2, 10), bytes({0.5f, 0.5f, 0.5f}), t0 + 3s));
  REQUIRE_FALSE(d.on_update("b", report(2, 10), bytes({0.5f, 0.5f, 0.5f}), t0 + 3s));
  CHECK(d.take_finished().at(0).applied);
  CHECK(d.global().values()[1] == 4.0f);
}

TEST_CASE("sample counts above the cap are refused, so no round total can wrap") {
  auto c = coordinator();
  connect_and_start(c, {"a", "b"});
  auto refused = c.on_update("a", report(1, std::numeric_limits<std::uint64_t>::max()), bytes({0.1f, 0.1f, 0.1f}), t0 + 1s);
  REQUIRE(refused);
  CHECK(*refused == "update says 18446744073709551615 samples, above the cap of 4294967296 a device may claim");
}

TEST_CASE("in plain mode aggregation.max_update_norm refuses a larger update, and secure mode refuses the setting") {
  auto config = small_config();
  config.max_update_norm = 1.0;
  auto c = coordinator(config);
  connect_and_start(c, {"a", "b", "c"});
  REQUIRE_FALSE(c.on_update("a", report(1, 10), bytes({0.6f, 0.0f, 0.79f}), t0 + 1s));
  auto poisoned = c.on_update("b", report(1, 10), bytes({3e38f, 0.0f, 0.0f}), t0 + 1s);
  REQUIRE(poisoned);
  CHECK(poisoned->find("above aggregation.max_update_norm 1") != std::string::npos);
  REQUIRE_FALSE(c.on_update("c", report(1, 10), bytes({0.0f, 0.0f, 0.0f}), t0 + 1s));
  const auto finished = c.take_finished();
  REQUIRE(finished.at(0).applied);
  CHECK(finished[0].rejected == 1);
  CHECK(c.global().values()[0] == Approx(1.3));  // a and c only: (0.6 + 0) / 2

  auto negative = config;
  negative.max_update_norm = -1;
  CHECK(RoundCoordinator::create(negative, global_model(), *ServerOptimizer::create({}, 3), 0).error().message ==
        "round config: max_update_norm must be >= 0");
  config.secure.enabled = true;
  auto secure = RoundCoordinator::create(config, global_model(), *ServerOptimizer::create({}, 3), 0);
  REQUIRE_FALSE(secure);
  CHECK(secure.error().message.find("max_update_norm needs plain mode") != std::string::npos);
}

TEST_CASE("a heartbeat whose sequence does not follow the last is refused and is no sign of life") {
  auto c = coordinator();
  c.on_hello("a", protocol::Hello{"test", 5, true}, t0);
  c.take_outgoing();
  c.on_heartbeat("a", 1, t0 + 1s);
  c.on_heartbeat("a", 2, t0 + 2s);
  CHECK(refusals(c.take_outgoing()) == 0);
  c.on_heartbeat("a", 2, t0 + 3s);  // replayed
  c.on_heartbeat("a", 1, t0 + 3s);  // older
  const auto out = c.take_outgoing();
  REQUIRE(refusals(out) == 2);
  CHECK(std::get<protocol::Refusal>(out[0].message).detail == "sequence 2 does not follow 2 (replayed or out of order)");
  // A new hello starts the count again (an agent that restarted counts from 1).
  c.on_hello("a", protocol::Hello{"test", 5, true}, t0 + 4s);
  c.take_outgoing();
  c.on_heartbeat("a", 1, t0 + 5s);
  CHECK(refusals(c.take_outgoing()) == 0);
}
