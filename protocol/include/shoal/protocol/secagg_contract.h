// What devices and server must compute alike in a secure round: the bytes
// an advertisement signature covers, how a share is sealed to a neighbour,
// and how masks are derived and applied.
//
// Masked input of member u, modulo 2^bits:
//   y_u = x_u + PRG(b_u, "self") + sum over neighbours v of sign(u, v) * PRG(s_uv, "pair")
// where b_u is u's self-mask seed, s_uv the key u and v agree from their
// mask keys, and sign(u, v) is +1 when u's index is below v's, -1 above,
// so each pair's masks cancel in the sum. All mask words come from ChaCha20
// (crypto::MaskStream); arithmetic is on uint32 words, which is arithmetic
// modulo 2^bits for every bits <= 32 once reduced.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shoal/crypto/aead.h"
#include "shoal/crypto/key_agreement.h"
#include "shoal/crypto/mask_stream.h"
#include "shoal/crypto/shamir.h"
#include "shoal/protocol/secagg_messages.h"

namespace shoal::protocol::secagg {

// The bytes a member signs in AdvertiseKeys: a label, the round, its nonce
// and the two public keys (the signer is named by its identity key).
std::vector<std::uint8_t> advertisement_transcript(std::uint64_t round, const RoundNonce& nonce,
                                                   const crypto::Curve25519PublicKey& cipher_key,
                                                   const crypto::Curve25519PublicKey& mask_key);

// The two shares member `from` gives member `to`.
struct SharePair {
  crypto::ShamirShare mask_key;   // of from's mask secret key
  crypto::ShamirShare self_mask;  // of from's self-mask seed
};

// Seals `shares` from `from` to `to` under the key from their cipher keys;
// the associated data binds round, nonce, sender and recipient. The AEAD
// nonce comes from `random`.
Result<SealedShare> seal_shares(const crypto::X25519KeyPair& from_cipher, MemberIndex from,
                                const crypto::Curve25519PublicKey& to_cipher, MemberIndex to, std::uint64_t round,
                                const RoundNonce& nonce, const SharePair& shares,
                                crypto::RandomSource& random = crypto::system_random());

// Opens a share sealed by `from` to `to` (this device), and checks that the
// plaintext names the same pair.
Result<SharePair> open_shares(const crypto::X25519KeyPair& to_cipher, MemberIndex to,
                              const crypto::Curve25519PublicKey& from_cipher, MemberIndex from, std::uint64_t round,
                              const RoundNonce& nonce, const SealedShare& sealed);

// The pairwise mask seed of the holder of `mine` and the holder of `theirs`.
Result<crypto::MaskSeed> pairwise_seed(const crypto::X25519KeyPair& mine, const crypto::Curve25519PublicKey& theirs);

// Adds (or subtracts) words [first, first + out.size()) of the stream.
void apply_mask(std::span<std::uint32_t> out, std::uint64_t first, const crypto::MaskStream& stream, bool subtract);

inline crypto::MaskStream self_mask_stream(const crypto::MaskSeed& seed) { return {seed, "shoal/secagg/self"}; }
inline crypto::MaskStream pair_mask_stream(const crypto::MaskSeed& seed) { return {seed, "shoal/secagg/pair"}; }

// Whether member `own` subtracts (rather than adds) its mask with `peer`.
inline bool pair_mask_subtracted(MemberIndex own, MemberIndex peer) { return own > peer; }

// Reduces every word modulo 2^bits.
void reduce(std::span<std::uint32_t> words, unsigned bits);

}  // namespace shoal::protocol::secagg
