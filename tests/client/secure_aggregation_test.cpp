// Devices (SecureAggregationClient) against the server's side of a secure
// round (SecureAggregationRound), in memory, with dropouts injected at
// every phase.
#include "shoal/aggregator/secure_aggregation_round.h"
#include "shoal/client/secure_aggregation_client.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <random>

#include "shoal/protocol/round_messages.h"

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

SecureAggregationRound make_server(const Fleet& fleet, std::size_t k, std::size_t words) {
  std::vector<aggregator::SecureMember> members;
  for (std::size_t i = 0; i < fleet.identities.size(); ++i) {
    members.push_back({device_name(i), fleet.identities[i].public_identity()});
  }
  aggregator::SecureRoundSettings settings{7, fleet.params, k, 99, words};
  auto round = SecureAggregationRound::create(settings, std::move(members));
  REQUIRE(round);
  return std::move(round).value();
}

std::size_t device_of(const std::string& name) { return std::stoul(name.substr(7)); }

struct Outcome {
  bool completed = false;
  std::string abandoned;  // why, when not completed
  std::vector<std::uint32_t> sum;
  std::vector<std::uint32_t> expected;  // the sum of the inputs that were sent
  std::size_t inputs_sent = 0;
  bool every_sender_answered_unmasking = true;
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
    for (auto& [device, message] : *next) {
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
      } else if (auto* request = std::get_if<protocol::UnmaskRequest>(&message); request && answers(i, Drop::before_unmasking)) {
        auto response = fleet.clients[i]->unmask(*request);
        REQUIRE(response);
        REQUIRE_FALSE(server.on_unmask(device, *response));
      }
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
