#include "shoal/aggregator/secure_aggregation_round.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include "shoal/crypto/mask_stream.h"
#include "shoal/crypto/shamir.h"
#include "shoal/protocol/round_messages.h"
#include "shoal/protocol/secagg_contract.h"

namespace shoal::aggregator {
namespace {

using protocol::MemberIndex;
namespace secagg = protocol::secagg;

std::string count_of(std::size_t part, std::size_t whole) {
  return std::to_string(part) + " of " + std::to_string(whole);
}

// One mask to strip while unmasking.
struct MaskJob {
  crypto::MaskStream stream;
  bool subtract;
};

// Applies every job to `sum`, the vector split into one slice per thread.
void apply_jobs(std::span<std::uint32_t> sum, const std::vector<MaskJob>& jobs) {
  constexpr std::size_t kMinSlice = 1 << 16;
  const std::size_t threads = std::clamp<std::size_t>(sum.size() / kMinSlice, 1, std::max(1u, std::thread::hardware_concurrency()));
  auto work = [&](std::size_t t) {
    const std::size_t begin = sum.size() * t / threads, end = sum.size() * (t + 1) / threads;
    for (const auto& job : jobs) secagg::apply_mask(sum.subspan(begin, end - begin), begin, job.stream, job.subtract);
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& thread : pool) thread.join();
}

}  // namespace

std::vector<std::vector<std::size_t>> neighbour_graph(std::size_t members, std::size_t k, std::uint64_t seed) {
  std::vector<std::vector<std::size_t>> graph(members);
  const std::size_t half = (k + 1) / 2;
  if (members <= 1) return graph;
  if (2 * half >= members - 1) {  // complete graph
    for (std::size_t i = 0; i < members; ++i) {
      for (std::size_t j = 0; j < members; ++j) {
        if (i != j) graph[i].push_back(j);
      }
    }
    return graph;
  }
  std::vector<std::size_t> ring(members);
  std::iota(ring.begin(), ring.end(), 0);
  std::mt19937_64 generator(seed);
  std::shuffle(ring.begin(), ring.end(), generator);
  for (std::size_t p = 0; p < members; ++p) {
    for (std::size_t d = 1; d <= half; ++d) {
      graph[ring[p]].push_back(ring[(p + d) % members]);
      graph[ring[p]].push_back(ring[(p + members - d) % members]);
    }
    std::sort(graph[ring[p]].begin(), graph[ring[p]].end());
  }
  return graph;
}

const char* SecureAggregationRound::phase_name(Phase phase) {
  switch (phase) {
    case Phase::advertising: return "advertising keys";
    case Phase::sharing: return "sharing keys";
    case Phase::masking: return "masked input";
    case Phase::unmasking: return "unmasking";
    case Phase::finished: return "finished";
  }
  return "?";
}

Result<SecureAggregationRound> SecureAggregationRound::create(const SecureRoundSettings& settings,
                                                              std::vector<SecureMember> members) {
  if (auto problem = settings.params.check()) {
    return make_error(ErrorCode::invalid_argument, "secure round: " + problem->describe());
  }
  if (members.empty() || members.size() > crypto::kShamirMaxShares) {
    return make_error(ErrorCode::invalid_argument, "secure round: 1 to 65535 members needed");
  }
  const auto graph = neighbour_graph(members.size(), settings.neighbours, settings.graph_seed);
  std::vector<MemberState> states;
  for (std::size_t i = 0; i < members.size(); ++i) {
    MemberState state{std::move(members[i]), {}, {}, {}, {}, false, false, {}, false};
    for (auto j : graph[i]) state.neighbours.push_back(static_cast<Index>(j + 1));
    states.push_back(std::move(state));
  }
  return SecureAggregationRound(settings, std::move(states));
}

SecureAggregationRound::SecureAggregationRound(const SecureRoundSettings& settings, std::vector<MemberState> members)
    : settings_(settings), members_(std::move(members)) {
  for (std::size_t i = 0; i < members_.size(); ++i) {
    const auto index = static_cast<Index>(i + 1);
    index_of_[members_[i].member.device] = index;
    live_.insert(index);
  }
}

bool SecureAggregationRound::phase_complete() const {
  if (phase_ == Phase::finished) return true;
  return std::all_of(live_.begin(), live_.end(), [&](Index i) { return members_[i - 1].answered; });
}

Result<MemberIndex> SecureAggregationRound::member_of(const std::string& device, Phase phase, const char* what) const {
  const std::string round = "secure round " + std::to_string(settings_.round);
  const auto found = index_of_.find(device);
  if (found == index_of_.end()) return make_error(ErrorCode::invalid_argument, "not a member of " + round);
  if (!live_.contains(found->second)) {
    return make_error(ErrorCode::invalid_argument, std::string(what) + " from a member already out of " + round);
  }
  if (phase != phase_) {
    return make_error(ErrorCode::invalid_argument,
                      std::string(what) + " while " + round + " is in phase " + phase_name(phase_));
  }
  // Masked input comes in parts; on_masked_part refuses one after the whole input.
  if (members_[found->second - 1].answered && phase_ != Phase::masking) {
    return make_error(ErrorCode::invalid_argument, "duplicate " + std::string(what) + " in " + round);
  }
  return found->second;
}

std::optional<std::string> SecureAggregationRound::on_advertise(const std::string& device,
                                                                const protocol::AdvertiseKeys& message) {
  if (message.round != settings_.round) return "keys for round " + std::to_string(message.round);
  auto index = member_of(device, Phase::advertising, "keys");
  if (!index) return index.error().message;
  auto& state = members_[*index - 1];
  const auto transcript =
      secagg::advertisement_transcript(message.round, settings_.params.nonce, message.cipher_key, message.mask_key);
  if (!state.member.identity.verify(transcript, message.signature)) {
    return "the advertised keys are not signed by the device's identity for this round";
  }
  if (message.cipher_key == message.mask_key) return "the cipher and mask keys must differ";
  state.keys = message;
  state.answered = true;
  return std::nullopt;
}

std::optional<std::string> SecureAggregationRound::on_shares(const std::string& device, const protocol::ShareKeys& message) {
  if (message.round != settings_.round) return "shares for round " + std::to_string(message.round);
  auto index = member_of(device, Phase::sharing, "shares");
  if (!index) return index.error().message;
  auto& state = members_[*index - 1];
  // Exactly one share for each neighbour the roster named (its live neighbours then).
  std::set<Index> expected;
  for (auto peer : state.neighbours) {
    if (live_.contains(peer)) expected.insert(peer);
  }
  std::set<Index> got;
  for (const auto& share : message.shares) {
    if (!expected.contains(share.peer) || !got.insert(share.peer).second) {
      return "a share for member " + std::to_string(share.peer) + ", not a neighbour or named twice";
    }
  }
  if (got.size() != expected.size()) return "shares for " + count_of(got.size(), expected.size()) + " neighbours";
  state.shares_out = message.shares;
  state.answered = true;
  return std::nullopt;
}

std::optional<std::string> SecureAggregationRound::on_masked_part(const std::string& device, std::uint64_t offset,
                                                                  std::span<const std::uint8_t> words) {
  auto index = member_of(device, Phase::masking, "masked input");
  if (!index) return index.error().message;
  auto& state = members_[*index - 1];
  if (!state.granted) return "masked input before the server sent this member its shares (it waits its turn to upload)";
  if (state.input_complete) return "masked input after the whole input arrived";
  if (state.answered) return "masked input after the server stopped waiting for it";
  if (offset != state.pending.size()) {
    return "masked input part at word " + std::to_string(offset) + " out of order: the next is at " +
           std::to_string(state.pending.size());
  }
  const std::size_t count = words.size() / sizeof(std::uint32_t);
  const std::size_t expected = std::min(protocol::kUpdatePartValues, settings_.input_words - state.pending.size());
  if (count != expected || words.size() % sizeof(std::uint32_t) != 0) {
    return "masked input part of " + std::to_string(words.size()) + " bytes at word " + std::to_string(offset) +
           ", expected " + std::to_string(expected * sizeof(std::uint32_t));
  }
  const std::size_t at = state.pending.size();
  if (at == 0) state.pending.reserve(settings_.input_words);  // exactly one input, not a doubling's worth
  state.pending.resize(at + count);
  std::memcpy(state.pending.data() + at, words.data(), words.size());
  if (state.pending.size() < settings_.input_words) return std::nullopt;
  // Complete: into the sum, and the copy is freed.
  if (sum_.empty()) sum_.assign(settings_.input_words, 0);
  for (std::size_t i = 0; i < sum_.size(); ++i) sum_[i] += state.pending[i];
  state.input_complete = true;
  finish_upload(state);
  return std::nullopt;
}

bool SecureAggregationRound::give_up_upload(const std::string& device) {
  const auto found = index_of_.find(device);
  if (phase_ != Phase::masking || found == index_of_.end()) return false;
  auto& state = members_[found->second - 1];
  if (!state.granted || state.answered) return false;
  finish_upload(state);
  return true;
}

void SecureAggregationRound::finish_upload(MemberState& state) {
  std::vector<std::uint32_t>().swap(state.pending);  // frees it (assigning {} would keep the capacity)
  state.answered = true;
  --uploading_;
  release_uploads(released_);
}

void SecureAggregationRound::release_uploads(std::vector<std::pair<std::string, SecureMessage>>& out) {
  while (!waiting_.empty() && (settings_.max_uploads == 0 || uploading_ < settings_.max_uploads)) {
    auto [index, bundle] = std::move(waiting_.front());
    waiting_.pop_front();
    auto& state = members_[index - 1];
    state.granted = true;
    ++uploading_;
    out.emplace_back(state.member.device, std::move(bundle));
  }
}

std::optional<std::string> SecureAggregationRound::on_unmask(const std::string& device,
                                                             const protocol::UnmaskResponse& message) {
  if (message.round != settings_.round) return "unmasking shares for round " + std::to_string(message.round);
  auto index = member_of(device, Phase::unmasking, "unmasking shares");
  if (!index) return index.error().message;
  auto& state = members_[*index - 1];
  for (const auto& share : message.shares) {
    if (share.owner == 0 || share.owner > members_.size()) return "a share of unknown member " + std::to_string(share.owner);
  }
  state.revealed = message.shares;
  state.answered = true;
  return std::nullopt;
}

std::size_t SecureAggregationRound::live_neighbours(Index index, const std::set<Index>& among) const {
  const auto& list = members_[index - 1].neighbours;
  return static_cast<std::size_t>(std::count_if(list.begin(), list.end(), [&](Index j) { return among.contains(j); }));
}

void SecureAggregationRound::prune(std::set<Index>& live) const {
  for (bool changed = true; changed;) {
    changed = false;
    for (auto it = live.begin(); it != live.end();) {
      if (live_neighbours(*it, live) < settings_.params.threshold) {
        it = live.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
  }
}

Error SecureAggregationRound::abandon(const std::string& why) const {
  return make_error(ErrorCode::invalid_argument,
                    "secure round " + std::to_string(settings_.round) + ", phase " + phase_name(phase_) + ": " + why);
}

Result<std::vector<std::pair<std::string, SecureMessage>>> SecureAggregationRound::advance() {
  if (phase_ == Phase::finished) return make_error(ErrorCode::invalid_argument, "secure round: already finished");
  Result<std::vector<std::pair<std::string, SecureMessage>>> next = std::vector<std::pair<std::string, SecureMessage>>{};
  switch (phase_) {
    case Phase::advertising: next = close_advertising(); break;
    case Phase::sharing: next = close_sharing(); break;
    case Phase::masking: next = close_masking(); break;
    case Phase::unmasking:
      if (auto status = close_unmasking(); !status) return status.error();
      break;
    case Phase::finished: break;  // handled above
  }
  if (!next) return next;
  phase_ = static_cast<Phase>(static_cast<int>(phase_) + 1);
  for (auto& state : members_) state.answered = false;
  return next;
}

Result<std::vector<std::pair<std::string, SecureMessage>>> SecureAggregationRound::close_advertising() {
  std::set<Index> advertised;
  for (auto i : live_) {
    if (members_[i - 1].keys) advertised.insert(i);
  }
  const std::size_t answered = advertised.size();
  prune(advertised);
  if (advertised.empty()) {
    return abandon(count_of(answered, members_.size()) + " members advertised keys; none has " +
                   std::to_string(settings_.params.threshold) + " live neighbours");
  }
  live_ = advertised;
  std::vector<std::pair<std::string, SecureMessage>> out;
  for (auto i : live_) {
    protocol::KeyRoster roster;
    roster.round = settings_.round;
    roster.index = i;
    for (auto j : members_[i - 1].neighbours) {
      if (!live_.contains(j)) continue;
      const auto& keys = *members_[j - 1].keys;
      roster.neighbours.push_back({j, members_[j - 1].member.identity.ed25519(), keys.cipher_key, keys.mask_key,
                                   keys.signature});
    }
    out.emplace_back(members_[i - 1].member.device, std::move(roster));
  }
  return out;
}

Result<std::vector<std::pair<std::string, SecureMessage>>> SecureAggregationRound::close_sharing() {
  std::set<Index> shared;
  for (auto i : live_) {
    if (members_[i - 1].answered) shared.insert(i);
  }
  const std::size_t answered = shared.size();
  prune(shared);  // a member whose shares too few live neighbours hold is left out before anyone masks with it
  if (shared.empty()) {
    return abandon(count_of(answered, live_.size()) + " members shared keys; none has " +
                   std::to_string(settings_.params.threshold) + " neighbours that did");
  }
  live_ = shared_ = shared;
  std::vector<std::pair<std::string, SecureMessage>> out;
  for (auto i : live_) {
    protocol::ShareBundle bundle;
    bundle.round = settings_.round;
    for (auto j : members_[i - 1].neighbours) {
      if (!live_.contains(j)) continue;
      for (const auto& share : members_[j - 1].shares_out) {
        if (share.peer == i) bundle.shares.push_back({j, share.sealed});
      }
    }
    waiting_.emplace_back(i, std::move(bundle));
  }
  release_uploads(out);
  return out;
}

Result<std::vector<std::pair<std::string, SecureMessage>>> SecureAggregationRound::close_masking() {
  waiting_.clear();  // never asked: dropouts like any other, their mask keys rebuilt
  released_.clear();
  uploading_ = 0;
  for (auto i : live_) {
    auto& state = members_[i - 1];
    if (state.input_complete) survivors_.insert(i);
    std::vector<std::uint32_t>().swap(state.pending);  // an incomplete input never reached the sum
  }
  if (survivors_.empty()) return abandon("no member's masked input arrived (" + std::to_string(live_.size()) + " expected)");
  // Every member that shared needs `threshold` surviving neighbours to answer for it.
  for (auto i : shared_) {
    if (live_neighbours(i, survivors_) < settings_.params.threshold) {
      return abandon("member " + std::to_string(i) + " has " +
                     count_of(live_neighbours(i, survivors_), settings_.params.threshold) +
                     " needed neighbours left to reveal its shares (" + count_of(survivors_.size(), shared_.size()) +
                     " members sent masked input)");
    }
  }
  live_ = survivors_;
  std::vector<std::pair<std::string, SecureMessage>> out;
  for (auto i : live_) {
    protocol::UnmaskRequest request;
    request.round = settings_.round;
    for (auto j : members_[i - 1].neighbours) {
      if (survivors_.contains(j)) {
        request.self_mask_of.push_back(j);
      } else if (shared_.contains(j)) {
        request.mask_key_of.push_back(j);
      }
    }
    out.emplace_back(members_[i - 1].member.device, std::move(request));
  }
  return out;
}

Status SecureAggregationRound::close_unmasking() {
  // Collect, for each member, the shares of the secret the server may learn.
  std::map<Index, std::vector<crypto::ShamirShare>> shares;
  std::size_t responders = 0;
  for (auto i : live_) {
    const auto& state = members_[i - 1];
    if (!state.answered) continue;
    ++responders;
    std::set<Index> owners;  // one share per owner from each responder: a repeated one would spoil the combine
    for (const auto& revealed : state.revealed) {
      const bool wanted = revealed.kind == protocol::ShareKind::self_mask ? survivors_.contains(revealed.owner)
                                                                          : shared_.contains(revealed.owner) &&
                                                                                !survivors_.contains(revealed.owner);
      const auto& owner_neighbours = members_[revealed.owner - 1].neighbours;
      if (!wanted || !std::binary_search(owner_neighbours.begin(), owner_neighbours.end(), i) ||
          !owners.insert(revealed.owner).second) {
        continue;
      }
      auto share = crypto::ShamirShare::from_bytes(revealed.share);
      if (share) shares[revealed.owner].push_back(std::move(share).value());
    }
  }
  std::vector<MaskJob> jobs;
  for (auto owner : shared_) {
    const bool survivor = survivors_.contains(owner);
    auto& owned = shares[owner];
    if (owned.size() < settings_.params.threshold) {
      return abandon(std::to_string(responders) + " members answered; member " + std::to_string(owner) + "'s " +
                     (survivor ? "self-mask seed" : "mask key") + " has " + count_of(owned.size(), settings_.params.threshold) +
                     " shares needed");
    }
    auto secret = crypto::shamir_combine(owned);
    if (!secret) return abandon("member " + std::to_string(owner) + "'s shares do not combine: " + secret.error().message);
    if (survivor) {
      jobs.push_back({secagg::self_mask_stream(crypto::MaskSeed(secret->span())), true});
      continue;
    }
    // A dropout: strip the pairwise masks its surviving neighbours added, as it would have.
    const auto keys = crypto::X25519KeyPair::from_secret(crypto::Curve25519SecretKey(secret->span()));
    if (keys.public_key != members_[owner - 1].keys->mask_key) {
      return abandon("member " + std::to_string(owner) + "'s mask key shares rebuild a key it did not advertise (a bad share)");
    }
    for (auto peer : members_[owner - 1].neighbours) {
      if (!survivors_.contains(peer)) continue;
      auto seed = secagg::pairwise_seed(keys, members_[peer - 1].keys->mask_key);
      if (!seed) return abandon(seed.error().message);
      jobs.push_back({secagg::pair_mask_stream(*seed), secagg::pair_mask_subtracted(owner, peer)});
    }
  }
  apply_jobs(sum_, jobs);
  secagg::reduce(sum_, static_cast<unsigned>(settings_.params.bits));
  return ok_status();
}

}  // namespace shoal::aggregator
