// Devices (SecureAggregationClient) against the server's side of a secure
// round (SecureAggregationRound), in memory, with dropouts injected at
// every phase.
#include "shoal/aggregator/secure_aggregation_round.h"
#include "shoal/client/secure_aggregation_client.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <deque>
#include <memory>
#include <random>

#include "shoal/client/update_privatizer.h"
#include "shoal/protocol/round_messages.h"
#include "shoal/weights/modular_quantizer.h"
#include "shoal/weights/vector_ops.h"

using namespace shoal;
using aggregator::SecureAggregationRound;
using Phase = SecureAggregationRound::Phase;

namespace {

// When a device stops answering: before advertising keys, before sharing
// them, before sending its masked input, before answering the unmasking.
enum class Drop { never = 0, before_advertising, before_sharing, before_input, before_unmasking };

struct Fleet {
  std::vector<crypto::IdentityKeyPair> identities;
  std::vector<std::vector<std::uint32_t>> inputs;
  std::vector<std::unique_ptr<client::SecureAggregationClient>> clients;
  protocol::SecureParams params;
};

std::string device_name(std::size_t i) { return "device-" + std::to_string(i); }

Fleet make_fleet(std::size_t n, std::size_t words, unsigned threshold, unsigned bits, std::uint64_t seed) {
  Fleet fleet;
  fleet.params.threshold = threshold;
  fleet.params.bits = bits;
  fleet.params.nonce.fill(static_cast<std::uint8_t>(seed));
  std::mt19937 generator(static_cast<std::uint32_t>(seed));
  const std::uint32_t mask = bits >= 32 ? ~0u : (1u << bits) - 1;
  for (std::size_t i = 0; i < n; ++i) {
    fleet.identities.push_back(crypto::IdentityKeyPair::generate());
    std::vector<std::uint32_t> input(words);
    for (auto& word : input) word = generator() & mask;
    fleet.inputs.push_back(input);
  }
  for (std::size_t i = 0; i < n; ++i) {
    fleet.clients.push_back(std::make_unique<client::SecureAggregationClient>(fleet.identities[i], 7, fleet.params,
                                                                              fleet.inputs[i]));
  }
  return fleet;
}

SecureAggregationRound make_server(const Fleet& fleet, std::size_t k, std::size_t words, std::size_t max_uploads = 0) {
  std::vector<aggregator::SecureMember> members;
  for (std::size_t i = 0; i < fleet.identities.size(); ++i) {
    members.push_back({device_name(i), fleet.identities[i].public_identity()});
  }
  aggregator::SecureRoundSettings settings{7, fleet.params, k, 99, words, max_uploads};
  auto round = SecureAggregationRound::create(settings, std::move(members));
  REQUIRE(round);
  return std::move(round).value();
}

std::size_t device_of(const std::string& name) { return std::stoul(name.substr(7)); }

// Every device advertises its keys; the server closes the phase and hands out the rosters.
std::vector<std::pair<std::string, aggregator::SecureMessage>> advertise_all(Fleet& fleet, SecureAggregationRound& server) {
  for (std::size_t i = 0; i < fleet.clients.size(); ++i) {
    REQUIRE_FALSE(server.on_advertise(device_name(i), fleet.clients[i]->advertise()));
  }
  auto rosters = server.advance();
  REQUIRE(rosters);
  return std::move(rosters).value();
}

struct Outcome {
  bool completed = false;
  std::string abandoned;  // why, when not completed
  std::vector<std::uint32_t> sum;
  std::vector<std::uint32_t> expected;  // the sum of the inputs that were sent
  std::size_t inputs_sent = 0;
  bool every_sender_answered_unmasking = true;
  std::size_t most_uploading = 0;  // the most masked inputs the server let arrive at once
};

// Runs a whole round; devices drop as `drops` says.
Outcome run_round(Fleet& fleet, SecureAggregationRound& server, const std::vector<Drop>& drops, std::size_t words) {
  Outcome outcome;
  outcome.expected.assign(words, 0);
  const std::uint32_t mask = fleet.params.bits >= 32 ? ~0u : (1u << fleet.params.bits) - 1;
  auto answers = [&](std::size_t i, Drop phase) { return drops[i] == Drop::never || drops[i] > phase; };
  for (std::size_t i = 0; i < fleet.clients.size(); ++i) {
    if (answers(i, Drop::before_advertising)) REQUIRE_FALSE(server.on_advertise(device_name(i), fleet.clients[i]->advertise()));
  }
  auto next = server.advance();
  for (std::size_t phase = 1; next && server.phase() != Phase::finished; ++phase) {
    // Bundles the server releases as uploads finish join the queue (flow control).
    std::deque<std::pair<std::string, aggregator::SecureMessage>> queue(next->begin(), next->end());
    for (; !queue.empty(); queue.pop_front()) {
      outcome.most_uploading = std::max(outcome.most_uploading, server.uploading());
      auto& [device, message] = queue.front();
      const auto i = device_of(device);
      if (auto* roster = std::get_if<protocol::KeyRoster>(&message); roster && answers(i, Drop::before_sharing)) {
        auto shares = fleet.clients[i]->share_keys(*roster, nullptr);
        REQUIRE(shares);
        REQUIRE_FALSE(server.on_shares(device, *shares));
      } else if (auto* bundle = std::get_if<protocol::ShareBundle>(&message); bundle && answers(i, Drop::before_input)) {
        auto masked = fleet.clients[i]->masked_input(*bundle);
        REQUIRE(masked);
        for (std::size_t offset = 0; offset < masked->size(); offset += protocol::kUpdatePartValues) {
          const std::size_t count = std::min(protocol::kUpdatePartValues, masked->size() - offset);
          REQUIRE_FALSE(server.on_masked_part(device, offset, {reinterpret_cast<const std::uint8_t*>(masked->data() + offset), count * 4}));
        }
        ++outcome.inputs_sent;
        for (std::size_t w = 0; w < words; ++w) outcome.expected[w] = (outcome.expected[w] + fleet.inputs[i][w]) & mask;
        outcome.every_sender_answered_unmasking &= answers(i, Drop::before_unmasking);
      } else if (bundle) {
        CHECK(server.give_up_upload(device));  // what the coordinator does once the device is silent too long
      } else if (auto* request = std::get_if<protocol::UnmaskRequest>(&message); request && answers(i, Drop::before_unmasking)) {
        auto response = fleet.clients[i]->unmask(*request);
        REQUIRE(response);
        REQUIRE_FALSE(server.on_unmask(device, *response));
      }
      for (auto& released : server.take_released()) queue.push_back(std::move(released));
    }
    next = server.advance();
  }
  if (!next) {
    outcome.abandoned = next.error().message;
    return outcome;
  }
  outcome.completed = true;
  outcome.sum.assign(server.sum().begin(), server.sum().end());
  return outcome;
}

}  // namespace

TEST_CASE("secure round: every dropout pattern of a 4-device cohort with the complete graph recovers the exact sum or abandons") {
  constexpr std::size_t kDevices = 4, kWords = 37;
  constexpr unsigned kThreshold = 2;
  std::size_t completed = 0, abandoned = 0;
  for (int pattern = 0; pattern < 625; ++pattern) {  // 5^4: each device drops at one of four phases or never
    std::vector<Drop> drops;
    for (int i = 0, p = pattern; i < 4; ++i, p /= 5) drops.push_back(static_cast<Drop>(p % 5));
    auto fleet = make_fleet(kDevices, kWords, kThreshold, 32, static_cast<std::uint64_t>(pattern));
    auto server = make_server(fleet, kDevices - 1, kWords);
    const auto outcome = run_round(fleet, server, drops, kWords);
    INFO("pattern " << pattern << ": " << outcome.abandoned);
    if (outcome.completed) {
      ++completed;
      CHECK(server.survivors() == outcome.inputs_sent);
      CHECK(outcome.sum == outcome.expected);
    } else {
      ++abandoned;
      // With threshold + 1 senders who all answer, every secret has enough shares.
      CHECK_FALSE((outcome.inputs_sent >= kThreshold + 1 && outcome.every_sender_answered_unmasking));
      CHECK(outcome.abandoned.find("phase") != std::string::npos);
    }
  }
  CHECK(completed > 0);
  CHECK(abandoned > 0);
}

TEST_CASE("secure round: random dropout patterns with a small neighbourhood (SecAgg+) recover the exact sum") {
  constexpr std::size_t kDevices = 16, kWords = 300'000;  // more than one input part
  std::mt19937 generator(5);
  std::size_t completed = 0;
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<Drop> drops(kDevices, Drop::never);
    for (auto& drop : drops) {
      if (generator() % 6 == 0) drop = static_cast<Drop>(1 + generator() % 4);
    }
    const unsigned bits = trial % 2 == 0 ? 32 : 20;
    auto fleet = make_fleet(kDevices, trial < 2 ? kWords : 1000, 3, bits, 100 + trial);
    auto server = make_server(fleet, 6, fleet.inputs[0].size());
    const auto outcome = run_round(fleet, server, drops, fleet.inputs[0].size());
    INFO("trial " << trial << ": " << outcome.abandoned);
    REQUIRE(outcome.completed);
    ++completed;
    CHECK(server.survivors() == outcome.inputs_sent);
    CHECK(outcome.sum == outcome.expected);
  }
  CHECK(completed == 12);
}

TEST_CASE("secure round: flow control lets at most max_uploads masked inputs arrive at once, and the sum stays exact") {
  constexpr std::size_t kDevices = 16, kWords = 1000;
  std::mt19937 generator(5);  // the dropout patterns of the test above, which all recover
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<Drop> drops(kDevices, Drop::never);
    for (auto& drop : drops) {
      if (generator() % 6 == 0) drop = static_cast<Drop>(1 + generator() % 4);
    }
    const std::size_t max_uploads = 1 + trial % 3;
    auto fleet = make_fleet(kDevices, kWords, 3, 32, 100 + trial);
    auto server = make_server(fleet, 6, kWords, max_uploads);
    const auto outcome = run_round(fleet, server, drops, kWords);
    INFO("trial " << trial << ": " << outcome.abandoned);
    REQUIRE(outcome.completed);
    CHECK(outcome.most_uploading == max_uploads);
    CHECK(server.survivors() == outcome.inputs_sent);
    CHECK(outcome.sum == outcome.expected);
  }
}

TEST_CASE("secure round: masked input from a member still waiting for its shares is refused and not held") {
  auto fleet = make_fleet(4, 10, 2, 32, 3);
  auto server = make_server(fleet, 3, 10, 1);
  for (auto& [device, roster] : advertise_all(fleet, server)) {
    auto shares = fleet.clients[device_of(device)]->share_keys(std::get<protocol::KeyRoster>(roster), nullptr);
    REQUIRE(shares);
    REQUIRE_FALSE(server.on_shares(device, *shares));
  }
  auto bundles = server.advance();
  REQUIRE(bundles);
  REQUIRE(bundles->size() == 1);  // one upload at a time
  const auto first = bundles->front().first;
  CHECK(server.uploading() == 1);
  const std::string waiting = first == device_name(0) ? device_name(1) : device_name(0);
  const std::vector<std::uint32_t> words(10, 5);
  const auto refused = server.on_masked_part(waiting, 0, {reinterpret_cast<const std::uint8_t*>(words.data()), 40});
  REQUIRE(refused);
  CHECK(refused->find("waits its turn") != std::string::npos);
  CHECK(server.take_released().empty());
  // The first member finishes: the next bundle is released.
  auto masked = fleet.clients[device_of(first)]->masked_input(std::get<protocol::ShareBundle>(bundles->front().second));
  REQUIRE(masked);
  REQUIRE_FALSE(server.on_masked_part(first, 0, {reinterpret_cast<const std::uint8_t*>(masked->data()), 40}));
  const auto next = server.take_released();
  REQUIRE(next.size() == 1);
  CHECK(next[0].first != first);
  CHECK(server.uploading() == 1);
  // A member given up on frees its turn; one not uploading cannot be given up on.
  CHECK_FALSE(server.give_up_upload(first));
  CHECK(server.give_up_upload(next[0].first));
  CHECK(server.take_released().size() == 1);
}

TEST_CASE("secure round: too many dropouts abandon the round, naming the phase and the counts") {
  auto fleet = make_fleet(6, 10, 3, 32, 1);
  auto server = make_server(fleet, 5, 10);
  std::vector<Drop> drops = {Drop::never, Drop::never, Drop::before_input, Drop::before_input, Drop::before_input,
                             Drop::before_unmasking};
  const auto outcome = run_round(fleet, server, drops, 10);
  REQUIRE_FALSE(outcome.completed);
  CHECK(outcome.abandoned.find("phase masked input") != std::string::npos);
  CHECK(outcome.abandoned.find("3 of 6 members sent masked input") != std::string::npos);
}

TEST_CASE("secure round: the neighbour graph is symmetric with k neighbours each, complete at k >= n-1") {
  for (std::size_t n : {5, 20, 101}) {
    for (std::size_t k : {2, 4, 7, 200}) {
      const auto graph = aggregator::neighbour_graph(n, k, 3);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t expected = std::min(n - 1, k % 2 == 0 ? k : k + 1);
        CHECK(graph[i].size() == expected);
        for (auto j : graph[i]) {
          CHECK(j != i);
          CHECK(std::find(graph[j].begin(), graph[j].end(), i) != graph[j].end());
        }
      }
    }
  }
}

namespace {

// A 4-device complete-graph round run up to the point where every device
// holds its bundle (and, with `masked`, has sent its masked input).
struct FourDeviceRound {
  Fleet fleet = make_fleet(4, 64, 2, 32, 11);
  SecureAggregationRound server = make_server(fleet, 3, 64);
  std::vector<protocol::KeyRoster> rosters{4};
  std::vector<protocol::ShareBundle> bundles{4};
  std::vector<std::vector<std::uint32_t>> masked{4};

  FourDeviceRound() {
    auto rosters_sent = advertise_all(fleet, server);
    for (auto& [device, message] : rosters_sent) {
      const auto i = device_of(device);
      rosters[i] = std::get<protocol::KeyRoster>(message);
      auto shares = fleet.clients[i]->share_keys(rosters[i], nullptr);
      REQUIRE(shares);
      REQUIRE_FALSE(server.on_shares(device, *shares));
    }
    auto next = server.advance();
    REQUIRE(next);
    for (auto& [device, message] : *next) bundles[device_of(device)] = std::get<protocol::ShareBundle>(message);
  }
  void mask_all() {
    for (std::size_t i = 0; i < 4; ++i) {
      auto words = fleet.clients[i]->masked_input(bundles[i]);
      REQUIRE(words);
      masked[i] = *words;
    }
  }
};

}  // namespace

TEST_CASE("secure round: a device refuses an unmasking request for both shares of one neighbour") {
  FourDeviceRound round;
  round.mask_all();
  protocol::UnmaskRequest both{7, {2, 3}, {2}};  // device 0 asked for member 2's self-mask seed and mask key
  auto refused = round.fleet.clients[0]->unmask(both);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("names member 2 twice") != std::string::npos);
  CHECK_FALSE(round.fleet.clients[1]->unmask(protocol::UnmaskRequest{7, {9}, {}}));  // not a neighbour
  CHECK(round.fleet.clients[1]->unmask(protocol::UnmaskRequest{7, {3, 4}, {1}}));     // a fair request is answered
}

TEST_CASE("secure round: a substituted key, an untrusted identity, a modified share and a replay from another round fail") {
  FourDeviceRound round;
  auto& client = *round.fleet.clients[0];
  SECTION("a mask key substituted by the server breaks the neighbour's signature") {
    auto fleet = make_fleet(3, 8, 1, 32, 12);
    auto server = make_server(fleet, 2, 8);
    auto next = advertise_all(fleet, server);
    auto roster = std::get<protocol::KeyRoster>(next[0].second);
    roster.neighbours[0].mask_key = crypto::X25519KeyPair::generate().public_key;
    auto refused = fleet.clients[device_of(next[0].first)]->share_keys(roster, nullptr);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("not signed by its identity for this round") != std::string::npos);
  }
  SECTION("an identity not on the trusted list") {
    auto fleet = make_fleet(3, 8, 1, 32, 13);
    auto server = make_server(fleet, 2, 8);
    auto next = advertise_all(fleet, server);
    client::TrustedPeers trusted{fleet.identities[0].public_identity().ed25519()};
    const auto i = device_of(next[0].first);
    auto refused = fleet.clients[i]->share_keys(std::get<protocol::KeyRoster>(next[0].second), &trusted);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("not a trusted peer") != std::string::npos);
  }
  SECTION("a share altered in transit does not open") {
    auto bundle = round.bundles[0];
    bundle.shares[0].sealed[40] ^= 1;
    auto refused = client.masked_input(bundle);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("does not open") != std::string::npos);
  }
  SECTION("keys and shares replayed into a later round are refused") {
    // Same devices, round 8 with a fresh nonce: the round-7 roster and bundle are replayed to device 0.
    auto params = round.fleet.params;
    params.nonce.fill(0xAB);
    client::SecureAggregationClient later(round.fleet.identities[0], 8, params, std::vector<std::uint32_t>(64));
    auto replayed_roster = round.rosters[0];
    replayed_roster.round = 8;
    auto refused = later.share_keys(replayed_roster, nullptr);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("substituted or replayed") != std::string::npos);
    CHECK_FALSE(client.share_keys(round.rosters[0], nullptr));  // and a second roster in round 7 is refused too
  }
  SECTION("the server refuses keys not signed for this round") {
    auto fleet = make_fleet(3, 8, 1, 32, 14);
    auto server = make_server(fleet, 2, 8);
    auto advertised = fleet.clients[0]->advertise();
    advertised.mask_key[0] ^= 1;
    CHECK(server.on_advertise(device_name(0), advertised));
    CHECK(server.on_advertise("device-9", fleet.clients[1]->advertise()));  // not a member
  }
}

TEST_CASE("secure round: what the server sees of one device is uniform (chi-square over the top bits of its words)") {
  constexpr std::size_t kWords = 200'000, kBins = 16;
  auto fleet = make_fleet(3, kWords, 1, 32, 16);
  for (std::size_t i = 0; i < 3; ++i) {  // all-zero inputs: whatever pattern shows is the masks'
    fleet.clients[i] = std::make_unique<client::SecureAggregationClient>(fleet.identities[i], 7, fleet.params,
                                                                         std::vector<std::uint32_t>(kWords, 0));
  }
  auto server = make_server(fleet, 2, kWords);
  for (auto& [device, message] : advertise_all(fleet, server)) {
    auto shares = fleet.clients[device_of(device)]->share_keys(std::get<protocol::KeyRoster>(message), nullptr);
    REQUIRE(shares);
    REQUIRE_FALSE(server.on_shares(device, *shares));
  }
  auto next = server.advance();
  REQUIRE(next);
  const auto& [device, message] = (*next)[0];
  auto masked = fleet.clients[device_of(device)]->masked_input(std::get<protocol::ShareBundle>(message));
  REQUIRE(masked);
  auto chi_square = [&](const std::vector<std::uint32_t>& words) {
    std::array<double, kBins> counts{};
    for (auto word : words) counts[word >> 28] += 1;
    const double expected = static_cast<double>(words.size()) / kBins;
    double sum = 0;
    for (double count : counts) sum += (count - expected) * (count - expected) / expected;
    return sum;
  };
  CHECK(chi_square(*masked) < 54.0);  // 15 degrees of freedom: exceeded by chance with probability about 1e-6
  CHECK(chi_square(std::vector<std::uint32_t>(kWords, 0)) > 54.0);  // the statistic does tell a pattern
}

TEST_CASE("privacy: clipping bounds the norm, device noise has the planned variance, the weight is capped") {
  std::vector<float> update(1000, 0.5f);  // norm 15.8
  auto clipped = client::clip_update(update, 2.0);
  CHECK(clipped.clipped);
  CHECK(clipped.norm == Approx(std::sqrt(250.0)));
  CHECK(weights::l2_norm(clipped.values) == Approx(2.0).epsilon(1e-6));
  CHECK_FALSE(client::clip_update(update, 100.0).clipped);

  protocol::PrivacyPlan plan;
  plan.clip_norm = 1.0;
  plan.noise_stddev = 0.5;
  plan.weight_cap = 1000;
  const auto input = client::secure_input(std::vector<float>(200'000, 0.0f), 4000, plan, 42);
  REQUIRE(input.values.size() == 200'002);
  double sum = 0, squares = 0;
  for (std::size_t i = 0; i < 200'000; ++i) {
    sum += input.values[i];
    squares += input.values[i] * input.values[i];
  }
  const double mean = sum / 200'000, variance = squares / 200'000 - mean * mean;
  CHECK(std::abs(mean) < 5 * 0.5 / std::sqrt(200'000.0));
  CHECK(variance == Approx(0.25).epsilon(0.02));  // the sample variance's sd is 0.3% here
  CHECK(input.values[200'000] == 1.0f);  // 4000 samples, capped at 1000
  CHECK(input.values[200'001] == 0.5f);  // not clipped, no count noise
}

TEST_CASE("the modular quantizer's headroom keeps a cohort's extreme sum from wrapping") {
  for (unsigned bits : {16u, 32u}) {
    const std::size_t members = 100;
    auto scale = weights::ModularQuantizer::headroom_scale(bits, members, 3.0);
    REQUIRE(scale);
    const weights::ModularQuantizer quantizer{bits, *scale, 3.0};
    std::vector<std::uint32_t> sum(2, 0), words(2);
    for (std::size_t m = 0; m < members; ++m) {
      quantizer.quantize(std::vector<float>{5.0f, -7.0f}, words, m);  // clamped to +-3
      for (std::size_t i = 0; i < 2; ++i) sum[i] += words[i];
    }
    std::vector<double> decoded(2);
    quantizer.dequantize(sum, decoded);
    CHECK(decoded[0] == Approx(300.0).margin(members / *scale));
    CHECK(decoded[1] == Approx(-300.0).margin(members / *scale));
  }
  CHECK_FALSE(weights::ModularQuantizer::headroom_scale(8, 1000, 1.0));
}

TEST_CASE("secure round: a device repeating a share in its unmasking answer does not spoil the sum") {
  FourDeviceRound round;
  round.mask_all();
  std::vector<std::uint32_t> expected(64, 0);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& words = round.masked[i];
    REQUIRE_FALSE(round.server.on_masked_part(device_name(i), 0, {reinterpret_cast<const std::uint8_t*>(words.data()), words.size() * 4}));
    for (std::size_t w = 0; w < 64; ++w) expected[w] += round.fleet.inputs[i][w];
  }
  auto requests = round.server.advance();
  REQUIRE(requests);
  for (auto& [device, message] : *requests) {
    auto response = round.fleet.clients[device_of(device)]->unmask(std::get<protocol::UnmaskRequest>(message));
    REQUIRE(response);
    auto doubled = *response;
    doubled.shares.insert(doubled.shares.end(), response->shares.begin(), response->shares.end());
    REQUIRE_FALSE(round.server.on_unmask(device, doubled));
  }
  REQUIRE(round.server.advance());
  CHECK(std::vector<std::uint32_t>(round.server.sum().begin(), round.server.sum().end()) == expected);
}
