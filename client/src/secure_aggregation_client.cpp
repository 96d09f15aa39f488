#include "shoal/client/secure_aggregation_client.h"

#include <algorithm>

namespace shoal::client {
namespace {

crypto::MaskSeed random_seed(crypto::RandomSource& random) {
  crypto::MaskSeed seed;
  random.fill(seed.span());
  return seed;
}

}  // namespace

SecureAggregationClient::SecureAggregationClient(const crypto::IdentityKeyPair& identity, std::uint64_t round,
                                                 const protocol::SecureParams& params, std::vector<std::uint32_t> input,
                                                 crypto::RandomSource& random)
    : identity_(identity),
      random_(random),
      round_(round),
      params_(params),
      input_(std::move(input)),
      cipher_keys_(crypto::X25519KeyPair::generate(random)),
      mask_keys_(crypto::X25519KeyPair::generate(random)),
      self_seed_(random_seed(random)) {
  advertisement_.round = round;
  advertisement_.cipher_key = cipher_keys_.public_key;
  advertisement_.mask_key = mask_keys_.public_key;
  advertisement_.signature = identity_.sign(protocol::secagg::advertisement_transcript(
      round, params.nonce, cipher_keys_.public_key, mask_keys_.public_key));
}

SecureAggregationClient::~SecureAggregationClient() { crypto::wipe(input_.data(), input_.size() * sizeof(std::uint32_t)); }

Error SecureAggregationClient::refuse(const std::string& what) const {
  return make_error(ErrorCode::verification, "secure round " + std::to_string(round_) + ": " + what);
}

Result<protocol::ShareKeys> SecureAggregationClient::share_keys(const protocol::KeyRoster& roster,
                                                                const TrustedPeers* trusted) {
  if (phase_ != Phase::advertised) return refuse("a key roster after keys were already shared");
  if (roster.round != round_) return refuse("a key roster for round " + std::to_string(roster.round));
  index_ = roster.index;
  for (const auto& entry : roster.neighbours) {
    const std::string who = "neighbour " + std::to_string(entry.index);
    if (entry.index == index_ || neighbours_.contains(entry.index)) return refuse(who + " is listed twice or is this device");
    if (entry.identity == identity_.public_identity().ed25519()) return refuse(who + " has this device's identity");
    if (trusted && !trusted->contains(entry.identity)) return refuse(who + "'s identity key is not a trusted peer");
    auto identity = crypto::PublicIdentity::from_ed25519(entry.identity);
    const auto transcript =
        protocol::secagg::advertisement_transcript(round_, params_.nonce, entry.cipher_key, entry.mask_key);
    if (!identity || !identity->verify(transcript, entry.signature)) {
      return refuse(who + "'s keys are not signed by its identity for this round (substituted or replayed)");
    }
    neighbours_[entry.index].keys = entry;
  }
  if (neighbours_.size() < params_.threshold) {
    return refuse("only " + std::to_string(neighbours_.size()) + " neighbours, the threshold is " +
                  std::to_string(params_.threshold));
  }
  const auto count = static_cast<unsigned>(neighbours_.size());
  const auto threshold = static_cast<unsigned>(params_.threshold);
  auto key_shares = crypto::shamir_split(crypto::ShamirSecret(mask_keys_.secret_key.span()), threshold, count, random_);
  auto seed_shares = crypto::shamir_split(crypto::ShamirSecret(self_seed_.span()), threshold, count, random_);
  if (!key_shares) return key_shares.error();
  if (!seed_shares) return seed_shares.error();
  protocol::ShareKeys message;
  message.round = round_;
  std::size_t next = 0;
  for (const auto& [peer, neighbour] : neighbours_) {
    const protocol::secagg::SharePair pair{(*key_shares)[next], (*seed_shares)[next]};
    ++next;
    auto sealed = protocol::secagg::seal_shares(cipher_keys_, index_, neighbour.keys.cipher_key, peer, round_,
                                                params_.nonce, pair, random_);
    if (!sealed) return refuse("neighbour " + std::to_string(peer) + ": " + sealed.error().message);
    message.shares.push_back(*sealed);
  }
  phase_ = Phase::shared;
  return message;
}

Result<std::vector<std::uint32_t>> SecureAggregationClient::masked_input(const protocol::ShareBundle& bundle) {
  if (phase_ != Phase::shared) return refuse("a share bundle out of order");
  if (bundle.round != round_) return refuse("a share bundle for round " + std::to_string(bundle.round));
  for (const auto& sealed : bundle.shares) {
    const auto found = neighbours_.find(sealed.peer);
    if (found == neighbours_.end()) return refuse("a share from member " + std::to_string(sealed.peer) + ", not a neighbour");
    if (found->second.shares) return refuse("two shares from member " + std::to_string(sealed.peer));
    auto pair = protocol::secagg::open_shares(cipher_keys_, index_, found->second.keys.cipher_key, sealed.peer, round_,
                                              params_.nonce, sealed);
    if (!pair) return refuse(pair.error().message);
    found->second.shares = std::move(pair).value();
  }
  if (bundle.shares.size() < params_.threshold) {
    return refuse("shares from " + std::to_string(bundle.shares.size()) + " neighbours, fewer than the threshold " +
                  std::to_string(params_.threshold));
  }
  std::vector<std::uint32_t> masked = std::move(input_);
  input_.clear();
  protocol::secagg::apply_mask(masked, 0, protocol::secagg::self_mask_stream(self_seed_), false);
  for (const auto& [peer, neighbour] : neighbours_) {
    if (!neighbour.shares) continue;  // it dropped out before sharing: no mask with it
    auto seed = protocol::secagg::pairwise_seed(mask_keys_, neighbour.keys.mask_key);
    if (!seed) return refuse("neighbour " + std::to_string(peer) + "'s mask key: " + seed.error().message);
    protocol::secagg::apply_mask(masked, 0, protocol::secagg::pair_mask_stream(*seed),
                                 protocol::secagg::pair_mask_subtracted(index_, peer));
  }
  protocol::secagg::reduce(masked, static_cast<unsigned>(params_.bits));
  phase_ = Phase::masked;
  return masked;
}

Result<protocol::UnmaskResponse> SecureAggregationClient::unmask(const protocol::UnmaskRequest& request) {
  if (phase_ != Phase::masked) return refuse("an unmasking request out of order");
  if (request.round != round_) return refuse("an unmasking request for round " + std::to_string(request.round));
  std::set<protocol::MemberIndex> named;
  for (auto list : {&request.self_mask_of, &request.mask_key_of}) {
    for (auto peer : *list) {
      if (!named.insert(peer).second) {
        return refuse("the unmasking request names member " + std::to_string(peer) +
                      " twice (asking for both of its shares would reveal its input)");
      }
      const auto found = neighbours_.find(peer);
      if (found == neighbours_.end() || !found->second.shares) {
        return refuse("the unmasking request names member " + std::to_string(peer) + ", which gave this device no shares");
      }
    }
  }
  protocol::UnmaskResponse response;
  response.round = round_;
  auto reveal = [&](protocol::MemberIndex peer, protocol::ShareKind kind) {
    const auto& pair = *neighbours_.at(peer).shares;
    const auto bytes = (kind == protocol::ShareKind::self_mask ? pair.self_mask : pair.mask_key).to_bytes();
    protocol::RevealedShare share{peer, kind, {}};
    std::copy(bytes.span().begin(), bytes.span().end(), share.share.begin());
    response.shares.push_back(share);
  };
  for (auto peer : request.self_mask_of) reveal(peer, protocol::ShareKind::self_mask);
  for (auto peer : request.mask_key_of) reveal(peer, protocol::ShareKind::mask_key);
  neighbours_.clear();  // the shares held are wiped: the round is over for this device
  phase_ = Phase::finished;
  return response;
}

}  // namespace shoal::client
