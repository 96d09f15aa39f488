// The server's side of one secure-aggregation round (SecAgg+, Bell et al.
// 2020, after Bonawitz et al. 2017; phases in protocol/secagg_messages.h).
// It relays keys and sealed shares, sums masked inputs modulo 2^bits, and
// at the end reconstructs from the survivors' shares exactly what it needs
// to strip the masks: the self-mask seed of every member whose input
// arrived and the mask key of every member that dropped out after sharing.
// It learns the sum of the survivors' inputs and nothing else.
//
// Each member has up to k neighbours on a ring over a seeded random order of
// the cohort (a Harary graph; k >= n-1 is the original protocol's complete
// graph). Members are dropped from the round as they miss phases; a member
// left with fewer than `threshold` live neighbours cannot be recovered, so
// it is excluded before anyone masks with it. If a phase leaves nobody, or
// a needed secret has too few shares, the round fails with the phase and
// the counts named.
//
// Masked inputs arrive in parts; a member's parts are held until its input
// is complete and only then added, so a member that vanishes mid-input
// leaves the sum untouched. Holding them is what costs memory, so uploads
// are flow-controlled: a member's share bundle is what tells it to send its
// input, and at most `max_uploads` bundles are out at once. Each input that
// completes, or that the driver gives up on, releases the next bundle
// (take_released). Input from a member not yet sent its bundle is refused,
// so at most max_uploads inputs are ever held. Unmasking expands the masks
// on every core, each thread owning a slice of the vector.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "shoal/crypto/identity.h"
#include "shoal/crypto/key_agreement.h"
#include "shoal/protocol/secagg_messages.h"

namespace shoal::aggregator {

struct SecureMember {
  std::string device;  // the transport's device key
  crypto::PublicIdentity identity;
};

struct SecureRoundSettings {
  std::uint64_t round = 0;
  protocol::SecureParams params;  // threshold, bits, nonce as sent to devices
  std::size_t neighbours = 0;     // k; at least n-1 means every other member
  std::uint64_t graph_seed = 0;
  std::size_t input_words = 0;    // length of every masked input
  std::size_t max_uploads = 0;    // masked inputs arriving at once; 0: every member's at once
};

using SecureMessage = std::variant<protocol::KeyRoster, protocol::ShareBundle, protocol::UnmaskRequest>;

class SecureAggregationRound {
 public:
  enum class Phase { advertising, sharing, masking, unmasking, finished };

  // Members get indices 1..n in the given order.
  static Result<SecureAggregationRound> create(const SecureRoundSettings& settings, std::vector<SecureMember> members);

  Phase phase() const { return phase_; }
  // Every member still in the round has answered the current phase.
  bool phase_complete() const;

  // Each returns why a message was refused, or nullopt.
  std::optional<std::string> on_advertise(const std::string& device, const protocol::AdvertiseKeys& message);
  std::optional<std::string> on_shares(const std::string& device, const protocol::ShareKeys& message);
  std::optional<std::string> on_masked_part(const std::string& device, std::uint64_t offset,
                                            std::span<const std::uint8_t> words);
  std::optional<std::string> on_unmask(const std::string& device, const protocol::UnmaskResponse& message);
  // Masking phase: stops waiting for a member's input (it went silent), so
  // that its held parts are freed and the next member may upload. Returns
  // false if the member was not uploading.
  bool give_up_upload(const std::string& device);
  // The share bundles released since the last call, as uploads finished.
  std::vector<std::pair<std::string, SecureMessage>> take_released() { return std::exchange(released_, {}); }
  // Members sent their bundle whose input is not complete yet.
  std::size_t uploading() const { return uploading_; }

  // Closes the current phase (at its deadline, or once complete): the
  // messages that open the next, or why the round cannot go on (also once finished).
  Result<std::vector<std::pair<std::string, SecureMessage>>> advance();
  // After the unmasking phase is advanced: the sum of the survivors' inputs.
  std::span<const std::uint32_t> sum() const { return sum_; }

  std::size_t survivors() const { return survivors_.size(); }  // members whose input is in the sum
  std::size_t live() const { return live_.size(); }  // members still in the round
  static const char* phase_name(Phase phase);

 private:
  using Index = protocol::MemberIndex;
  struct MemberState {
    SecureMember member;
    std::vector<Index> neighbours;  // the graph's, fixed at the start
    std::optional<protocol::AdvertiseKeys> keys;
    std::vector<protocol::SealedShare> shares_out;     // sealed by this member, by recipient
    std::vector<std::uint32_t> pending;                // masked input parts so far
    bool granted = false;         // sent its share bundle: may upload
    bool input_complete = false;
    std::vector<protocol::RevealedShare> revealed;     // its unmasking answer
    bool answered = false;  // in the current phase
  };

  SecureAggregationRound(const SecureRoundSettings& settings, std::vector<MemberState> members);
  // The member's index, if it is live and `phase` is the current one; `what` names the message in errors.
  Result<Index> member_of(const std::string& device, Phase phase, const char* what) const;
  std::size_t live_neighbours(Index index, const std::set<Index>& among) const;
  // Drops members of `live` with fewer than threshold neighbours in it, until none is left to drop.
  void prune(std::set<Index>& live) const;
  Error abandon(const std::string& why) const;
  Result<std::vector<std::pair<std::string, SecureMessage>>> close_advertising();
  Result<std::vector<std::pair<std::string, SecureMessage>>> close_sharing();
  Result<std::vector<std::pair<std::string, SecureMessage>>> close_masking();
  Status close_unmasking();
  // Sends waiting bundles into `out` while fewer than max_uploads are out.
  void release_uploads(std::vector<std::pair<std::string, SecureMessage>>& out);
  void finish_upload(MemberState& state);

  SecureRoundSettings settings_;
  std::vector<MemberState> members_;  // members_[i] has index i + 1
  std::map<std::string, Index> index_of_;
  Phase phase_ = Phase::advertising;
  std::set<Index> live_;
  std::set<Index> shared_;     // U2: shared keys (and so may be masked with)
  std::set<Index> survivors_;  // U3: input complete
  std::vector<std::uint32_t> sum_;
  std::deque<std::pair<Index, protocol::ShareBundle>> waiting_;  // bundles not yet sent, in member order
  std::size_t uploading_ = 0;
  std::vector<std::pair<std::string, SecureMessage>> released_;
};

// The neighbour lists of a Harary graph on `members` nodes: each node is
// joined to the k/2 nodes on either side of it (k rounded up to even) on a
// ring ordered by a permutation drawn from `seed`. Node i's list is at [i].
std::vector<std::vector<std::size_t>> neighbour_graph(std::size_t members, std::size_t k, std::uint64_t seed);

}  // namespace shoal::aggregator
