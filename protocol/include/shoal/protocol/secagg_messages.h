// The messages of a secure-aggregation round (SecAgg+, Bell et al. 2020,
// after Bonawitz et al. 2017). After training, each cohort member
//
//   1. advertises two fresh X25519 public keys, signed with its identity key
//      (AdvertiseKeys); the server relays each member's neighbours' keys
//      (KeyRoster);
//   2. sends its neighbours Shamir shares of its mask key and self-mask seed,
//      each sealed to one neighbour (ShareKeys); the server relays to each
//      member the shares sealed to it (ShareBundle);
//   3. sends its masked, quantised input in parts (MaskedInput);
//   4. reveals, for each neighbour the server names, the share the server
//      may have: the self-mask seed's for a survivor, the mask key's for a
//      dropout (UnmaskRequest, UnmaskResponse).
//
// Lists of fixed-size records travel as one bytes field each; decoders
// check the record size and count. What the records mean cryptographically
// (transcripts, sealing, masks) is in secagg_contract.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "shoal/crypto/identity.h"
#include "shoal/crypto/shamir.h"
#include "shoal/protocol/messages.h"

namespace shoal::protocol {

inline constexpr std::size_t kRoundNonceBytes = 32;
using RoundNonce = std::array<std::uint8_t, kRoundNonceBytes>;

// A device's index in a secure round: its Shamir x coordinate, 1..65535.
using MemberIndex = std::uint32_t;

// A sealed share: AEAD nonce + tag around the plaintext of secagg_contract.h.
inline constexpr std::size_t kSealedShareBytes = 24 + 16 + 4 + 4 + 2 * crypto::kShamirShareBytes;

// The secure-aggregation part of a train task.
struct SecureParams {
  RoundNonce nonce{};            // fresh per round: binds every signature and sealed share to it
  std::uint64_t threshold = 0;   // t: shares needed to reconstruct a member's secrets
  std::uint64_t bits = 32;       // inputs are integers modulo 2^bits
  double scale = 1;              // quantisation: integer = stochastic_round(value * scale)
  double range = 1;              // values are clamped to [-range, range] before scaling

  std::optional<DecodeError> check() const;
};

// Device -> server (phase 1).
struct AdvertiseKeys {
  static constexpr MessageType kType = MessageType::advertise_keys;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t round = 0;
  crypto::Curve25519PublicKey cipher_key{};  // share encryption
  crypto::Curve25519PublicKey mask_key{};    // pairwise masks
  crypto::Ed25519Signature signature{};      // over advertisement_transcript()

  void write(HeaderWriter& header) const;
  static Decoded<AdvertiseKeys> read(const Envelope& envelope);
};

struct RosterEntry {
  MemberIndex index = 0;
  crypto::Ed25519PublicKey identity{};
  crypto::Curve25519PublicKey cipher_key{};
  crypto::Curve25519PublicKey mask_key{};
  crypto::Ed25519Signature signature{};
};

// Server -> device (phase 1 -> 2): the device's index and its neighbours'
// advertised keys.
struct KeyRoster {
  static constexpr MessageType kType = MessageType::key_roster;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t round = 0;
  MemberIndex index = 0;  // the receiving device's own
  std::vector<RosterEntry> neighbours;

  void write(HeaderWriter& header) const;
  static Decoded<KeyRoster> read(const Envelope& envelope);
};

struct SealedShare {
  MemberIndex peer = 0;  // the recipient in ShareKeys, the sender in ShareBundle
  std::array<std::uint8_t, kSealedShareBytes> sealed{};
};

// A list of sealed shares: ShareKeys (device -> server, phase 2: one per
// neighbour) and ShareBundle (server -> device, phase 2 -> 3: those sealed
// to the device; their senders are the neighbours it masks with).
template <MessageType Type>
struct SealedShares {
  static constexpr MessageType kType = Type;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t round = 0;
  std::vector<SealedShare> shares;

  void write(HeaderWriter& header) const;
  static Decoded<SealedShares> read(const Envelope& envelope);
};
using ShareKeys = SealedShares<MessageType::share_keys>;
using ShareBundle = SealedShares<MessageType::share_bundle>;

// Device -> server (phase 3): words [offset, offset + payload words) of the
// masked input, uint32 little-endian, in parts of kUpdatePartValues words.
// The metrics are the device's own, in the clear.
struct MaskedInput {
  static constexpr MessageType kType = MessageType::masked_input;
  static constexpr std::size_t kMaxPayloads = 1;

  std::uint64_t round = 0;
  std::uint64_t offset = 0;
  double loss_after = 0;
  double accuracy_after = 0;

  void write(HeaderWriter& header) const;
  static Decoded<MaskedInput> read(const Envelope& envelope);
};

// Server -> device (phase 3 -> 4): whose shares to reveal. A device refuses
// a request that names one peer in both lists.
struct UnmaskRequest {
  static constexpr MessageType kType = MessageType::unmask_request;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t round = 0;
  std::vector<MemberIndex> self_mask_of;  // survivors: their self-mask seed shares
  std::vector<MemberIndex> mask_key_of;   // dropouts: their mask key shares

  void write(HeaderWriter& header) const;
  static Decoded<UnmaskRequest> read(const Envelope& envelope);
};

enum class ShareKind : std::uint8_t { self_mask = 1, mask_key = 2 };

struct RevealedShare {
  MemberIndex owner = 0;  // whose secret the share is of
  ShareKind kind = ShareKind::self_mask;
  std::array<std::uint8_t, crypto::kShamirShareBytes> share{};
};

// Device -> server (phase 4).
struct UnmaskResponse {
  static constexpr MessageType kType = MessageType::unmask_response;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t round = 0;
  std::vector<RevealedShare> shares;

  void write(HeaderWriter& header) const;
  static Decoded<UnmaskResponse> read(const Envelope& envelope);
};

}  // namespace shoal::protocol
