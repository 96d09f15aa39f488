// One device's part in one secure-aggregation round (SecAgg+; the phases are
// described in protocol/secagg_messages.h). It holds the round's secrets —
// two X25519 key pairs, the self-mask seed, the shares its neighbours gave
// it — in memory only; they are wiped when the object is destroyed, which
// the agent does as soon as the round is over for it.
//
// Each step checks what the server relayed: every neighbour's keys carry its
// identity signature over this round and nonce (and, given a list of
// trusted peers, the identity must be on it), every sealed share opens and
// names the right pair, and an unmasking request never gets both shares of
// one neighbour.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "shoal/crypto/identity.h"
#include "shoal/crypto/key_agreement.h"
#include "shoal/crypto/mask_stream.h"
#include "shoal/crypto/random_source.h"
#include "shoal/protocol/secagg_contract.h"

namespace shoal::client {

using TrustedPeers = std::set<crypto::Ed25519PublicKey>;

class SecureAggregationClient {
 public:
  // `input` is the quantised vector (integers modulo 2^params.bits). Keys,
  // seeds, share coefficients and nonces come from `random`, which must
  // outlive the object.
  SecureAggregationClient(const crypto::IdentityKeyPair& identity, std::uint64_t round,
                          const protocol::SecureParams& params, std::vector<std::uint32_t> input,
                          crypto::RandomSource& random = crypto::system_random());
  ~SecureAggregationClient();
  SecureAggregationClient(const SecureAggregationClient&) = delete;
  SecureAggregationClient& operator=(const SecureAggregationClient&) = delete;

  std::uint64_t round() const { return round_; }

  // Phase 1: the signed public keys.
  protocol::AdvertiseKeys advertise() const { return advertisement_; }

  // Phase 2: checks the neighbours' keys, then seals to each a share of the
  // mask key and of the self-mask seed. `trusted`, if given, lists the
  // identities a neighbour may have.
  Result<protocol::ShareKeys> share_keys(const protocol::KeyRoster& roster, const TrustedPeers* trusted);

  // Phase 3: opens the shares relayed to this device and returns the masked
  // input, masked pairwise with exactly the neighbours whose shares came.
  Result<std::vector<std::uint32_t>> masked_input(const protocol::ShareBundle& bundle);

  // Phase 4: the shares asked for; refuses a request naming a neighbour
  // twice, in both lists, or one that sent this device no shares.
  Result<protocol::UnmaskResponse> unmask(const protocol::UnmaskRequest& request);

 private:
  enum class Phase { advertised, shared, masked, finished };
  struct Neighbour {
    protocol::RosterEntry keys;
    std::optional<protocol::secagg::SharePair> shares;  // the shares of its secrets it gave this device
  };

  Error refuse(const std::string& what) const;

  const crypto::IdentityKeyPair& identity_;
  crypto::RandomSource& random_;
  std::uint64_t round_;
  protocol::SecureParams params_;
  std::vector<std::uint32_t> input_;
  crypto::X25519KeyPair cipher_keys_;
  crypto::X25519KeyPair mask_keys_;
  crypto::MaskSeed self_seed_;
  protocol::AdvertiseKeys advertisement_;
  protocol::MemberIndex index_ = 0;
  std::map<protocol::MemberIndex, Neighbour> neighbours_;
  Phase phase_ = Phase::advertised;
};

}  // namespace shoal::client
