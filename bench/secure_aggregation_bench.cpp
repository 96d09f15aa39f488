// Secure aggregation costs (SecAgg+ and the complete graph of Bonawitz et
// al.), beside the ChaCha20 keystream rate that bounds mask expansion:
//   - a device's cost per round: advertise, share keys with k neighbours,
//     open their shares and mask its input, answer the unmasking;
//   - the server's unmasking cost (rebuilding secrets and stripping masks)
//     with 0 / 10 / 30% of the cohort dropping after sharing keys, the
//     costliest point to drop;
//   - bytes a device sends per round, against the plain update's.
//
//   ./build/bench/secure_aggregation_bench [--quick]   (22 min on 2 cores; --quick 6 s)
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>

#include "shoal/aggregator/secure_aggregation_round.h"
#include "shoal/client/secure_aggregation_client.h"
#include "shoal/protocol/round_messages.h"

using namespace shoal;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::size_t secagg_plus_k(std::size_t n) { return std::min(n - 1, static_cast<std::size_t>(2 * std::ceil(std::log2(n)))); }

std::size_t bytes_of(std::vector<zmq::message_t> frames) {
  std::size_t bytes = 0;
  for (const auto& frame : frames) bytes += frame.size();
  return bytes;
}

double keystream_rate(std::size_t words) {
  crypto::MaskSeed seed;
  const crypto::MaskStream stream(seed, "bench");
  std::vector<std::uint32_t> out(words);
  const auto start = Clock::now();
  stream.expand(0, out);
  return static_cast<double>(words * 4) / seconds_since(start);
}

struct ClientCost {
  double seconds = 0;
  std::size_t bytes = 0;
};

// One device with k neighbours: every step it takes, timed. The neighbours
// seal their shares to it with threshold 1 (only the device's own work is timed).
ClientCost client_cost(std::size_t k, std::size_t words) {
  protocol::SecureParams params;
  params.threshold = k / 2 + 1;
  params.nonce.fill(3);
  std::vector<crypto::IdentityKeyPair> identities;
  for (std::size_t i = 0; i <= k; ++i) identities.push_back(crypto::IdentityKeyPair::generate());
  std::vector<std::unique_ptr<client::SecureAggregationClient>> neighbours;
  auto single = params;
  single.threshold = 1;
  for (std::size_t i = 1; i <= k; ++i) {
    neighbours.push_back(std::make_unique<client::SecureAggregationClient>(identities[i], 1, single, std::vector<std::uint32_t>{}));
  }
  std::vector<std::uint32_t> input(words, 12345);
  ClientCost cost;
  auto start = Clock::now();
  client::SecureAggregationClient device(identities[0], 1, params, std::move(input));
  const auto advertised = device.advertise();
  cost.seconds += seconds_since(start);
  protocol::KeyRoster roster{1, 1, {}};
  for (std::size_t i = 0; i < k; ++i) {
    const auto keys = neighbours[i]->advertise();
    roster.neighbours.push_back({static_cast<protocol::MemberIndex>(i + 2), identities[i + 1].public_identity().ed25519(),
                                 keys.cipher_key, keys.mask_key, keys.signature});
  }
  start = Clock::now();
  auto shares = device.share_keys(roster, nullptr);
  cost.seconds += seconds_since(start);
  if (!shares) throw std::runtime_error(shares.error().message);
  protocol::ShareBundle bundle{1, {}};
  for (std::size_t i = 0; i < k; ++i) {
    protocol::KeyRoster back{1, static_cast<protocol::MemberIndex>(i + 2),
                             {{1, identities[0].public_identity().ed25519(), advertised.cipher_key, advertised.mask_key,
                               advertised.signature}}};
    auto sealed = neighbours[i]->share_keys(back, nullptr);
    if (!sealed) throw std::runtime_error(sealed.error().message);
    bundle.shares.push_back({static_cast<protocol::MemberIndex>(i + 2), sealed->shares[0].sealed});
  }
  start = Clock::now();
  auto masked = device.masked_input(bundle);
  cost.seconds += seconds_since(start);
  if (!masked) throw std::runtime_error(masked.error().message);
  protocol::UnmaskRequest request{1, {}, {}};
  for (std::size_t i = 0; i < k; ++i) (i % 3 == 0 ? request.mask_key_of : request.self_mask_of).push_back(static_cast<protocol::MemberIndex>(i + 2));
  start = Clock::now();
  auto response = device.unmask(request);
  cost.seconds += seconds_since(start);
  if (!response) throw std::runtime_error(response.error().message);
  cost.bytes = bytes_of(protocol::encode(advertised)) + bytes_of(protocol::encode(*shares)) +
               bytes_of(protocol::encode(*response));
  for (std::size_t offset = 0; offset < words; offset += protocol::kUpdatePartValues) {
    const std::size_t count = std::min(protocol::kUpdatePartValues, words - offset);
    std::vector<zmq::message_t> payload;
    payload.emplace_back(masked->data() + offset, count * 4);
    cost.bytes += bytes_of(protocol::encode(protocol::MaskedInput{1, offset, 0, 0}, std::move(payload)));
  }
  return cost;
}

// Runs fn(0) .. fn(count - 1) on every core; the setup of a large round
// (each device's key agreements and Shamir splits) is most of a run.
template <typename Fn>
void parallel_for(std::size_t count, const Fn& fn) {
  const std::size_t workers = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      for (std::size_t i = w; i < count; i += workers) fn(i);
    });
  }
  for (auto& thread : pool) thread.join();
}

// Members that vanish after sharing their keys: drawn at random, skipping
// any whose loss would leave some member with fewer than t live
// neighbours (a larger k tolerates more; here the cost is what is measured).
std::vector<bool> draw_dropouts(std::size_t n, std::size_t k, std::size_t threshold, double dropout) {
  const auto graph = aggregator::neighbour_graph(n, k, 9);
  std::vector<std::size_t> alive(n, 0);
  for (std::size_t i = 0; i < n; ++i) alive[i] = graph[i].size();
  std::vector<bool> gone(n, false);
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(n + k));
  std::size_t wanted = static_cast<std::size_t>(dropout * static_cast<double>(n));
  for (auto candidate : order) {
    if (wanted == 0) break;
    bool safe = alive[candidate] >= threshold;
    for (auto j : graph[candidate]) safe = safe && alive[j] > threshold;
    if (!safe) continue;
    gone[candidate] = true;
    for (auto j : graph[candidate]) --alive[j];
    --wanted;
  }
  return gone;
}

template <typename Message>
Message message_to(std::vector<std::pair<std::string, aggregator::SecureMessage>>& messages, std::size_t i) {
  return std::get<Message>(messages[i].second);
}

// A whole round of n devices; returns the server's unmasking time. The
// server is the real one and every device runs the real protocol, but each
// sends a stand-in masked input of zeros: the unmasking cost (rebuilding
// secrets, expanding and subtracting masks) does not depend on the values,
// and a thousand real 1M-word inputs would cost minutes of masking to set up.
double server_unmasking(std::size_t n, std::size_t k, std::size_t words, double dropout) {
  protocol::SecureParams params;
  params.threshold = k / 2 + 1;
  params.nonce.fill(5);
  std::vector<crypto::IdentityKeyPair> identities;
  std::vector<aggregator::SecureMember> members;
  for (std::size_t i = 0; i < n; ++i) {
    identities.push_back(crypto::IdentityKeyPair::generate());
    members.push_back({"d" + std::to_string(i), identities.back().public_identity()});
  }
  std::vector<std::unique_ptr<client::SecureAggregationClient>> clients(n);
  parallel_for(n, [&](std::size_t i) {
    clients[i] = std::make_unique<client::SecureAggregationClient>(identities[i], 1, params, std::vector<std::uint32_t>(1));
  });
  auto round = aggregator::SecureAggregationRound::create({1, params, k, 9, words}, members);
  if (!round) throw std::runtime_error(round.error().message);
  auto index = [](const std::string& device) { return std::stoul(device.substr(1)); };
  for (std::size_t i = 0; i < n; ++i) (void)round->on_advertise(members[i].device, clients[i]->advertise());

  auto rosters = round->advance();
  std::vector<std::optional<Result<protocol::ShareKeys>>> shares(rosters->size());
  parallel_for(rosters->size(), [&](std::size_t m) {
    shares[m] = clients[index((*rosters)[m].first)]->share_keys(message_to<protocol::KeyRoster>(*rosters, m), nullptr);
  });
  for (std::size_t m = 0; m < rosters->size(); ++m) (void)round->on_shares((*rosters)[m].first, **shares[m]);

  const auto gone = draw_dropouts(n, k, params.threshold, dropout);
  auto bundles = round->advance();
  std::vector<char> masked(bundles->size(), 0);  // not vector<bool>: threads write neighbouring elements
  parallel_for(bundles->size(), [&](std::size_t m) {
    const auto i = index((*bundles)[m].first);
    masked[m] = !gone[i] && static_cast<bool>(clients[i]->masked_input(message_to<protocol::ShareBundle>(*bundles, m)));
  });
  const std::vector<std::uint32_t> stand_in(protocol::kUpdatePartValues, 0);
  for (std::size_t m = 0; m < bundles->size(); ++m) {
    if (!masked[m]) continue;
    for (std::size_t offset = 0; offset < words; offset += protocol::kUpdatePartValues) {
      const std::size_t count = std::min(protocol::kUpdatePartValues, words - offset);
      (void)round->on_masked_part((*bundles)[m].first, offset,
                                  {reinterpret_cast<const std::uint8_t*>(stand_in.data()), count * 4});
    }
  }

  auto requests = round->advance();
  if (!requests) throw std::runtime_error(requests.error().message);
  std::vector<std::optional<Result<protocol::UnmaskResponse>>> answers(requests->size());
  parallel_for(requests->size(), [&](std::size_t m) {
    answers[m] = clients[index((*requests)[m].first)]->unmask(message_to<protocol::UnmaskRequest>(*requests, m));
  });
  for (std::size_t m = 0; m < requests->size(); ++m) (void)round->on_unmask((*requests)[m].first, **answers[m]);
  const auto start = Clock::now();
  auto done = round->advance();
  const double seconds = seconds_since(start);
  if (!done) throw std::runtime_error(done.error().message);
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"secure aggregation costs"};
  bool quick = false;
  app.add_flag("--quick", quick, "only n = 100 and 100 000 entries");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  const double rate = keystream_rate(std::size_t{1} << 26);
  std::printf("ChaCha20 keystream (one thread): %.2f GB/s = %.2f s per 1e9 mask words\n", rate / 1e9, 4e9 / rate);

  std::printf("\ndevice cost per round (target <= 0.1 s at n=1000, 100 000 entries, SecAgg+)\n");
  std::printf("%6s %9s %9s %5s %9s %10s %9s\n", "n", "entries", "graph", "k", "seconds", "bytes", "expansion");
  for (std::size_t n : {std::size_t{100}, std::size_t{1000}}) {
    for (std::size_t words : {std::size_t{100'000}, std::size_t{1'000'000}}) {
      if (quick && (n > 100 || words > 100'000)) continue;
      for (bool complete : {false, true}) {
        const std::size_t k = complete ? n - 1 : secagg_plus_k(n);
        const auto cost = client_cost(k, words + 2);
        std::printf("%6zu %9zu %9s %5zu %9.4f %10zu %8.3fx\n", n, words, complete ? "complete" : "secagg+", k,
                    cost.seconds, cost.bytes, static_cast<double>(cost.bytes) / static_cast<double>(words * 4));
      }
    }
  }

  std::printf("\nserver unmasking (target <= 3 s at n=1000, 30%% dropout, 100 000 entries, SecAgg+)\n");
  std::printf("%6s %9s %9s %5s %8s %9s %14s\n", "n", "entries", "graph", "k", "dropout", "seconds", "vs keystream");
  for (std::size_t n : {std::size_t{100}, std::size_t{1000}}) {
    for (std::size_t words : {std::size_t{100'000}, std::size_t{1'000'000}}) {
      if (quick && (n > 100 || words > 100'000)) continue;
      for (bool complete : {false, true}) {
        const std::size_t k = complete ? n - 1 : secagg_plus_k(n);
        for (double dropout : {0.0, 0.1, 0.3}) {
          const double seconds = server_unmasking(n, k, words, dropout);
          // The floor: one keystream word per survivor self-mask and per surviving neighbour of each dropout.
          const double survivors = std::ceil((1 - dropout) * static_cast<double>(n));
          const double dropped = static_cast<double>(n) - survivors;
          const double neighbours = complete ? survivors : static_cast<double>(k) * (1 - dropout);
          const double floor_words = (survivors + dropped * neighbours) * static_cast<double>(words);
          std::printf("%6zu %9zu %9s %5zu %7.0f%% %9.3f %13.2fx\n", n, words, complete ? "complete" : "secagg+", k,
                      dropout * 100, seconds, seconds / (floor_words * 4 / rate));
        }
      }
    }
  }
  return 0;
}
