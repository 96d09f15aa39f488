#include "shoal/protocol/secagg_contract.h"

#include <cstring>

#include "shoal/base/byte_io.h"

namespace shoal::protocol::secagg {
namespace {

constexpr std::size_t kPlaintextBytes = 4 + 4 + 2 * crypto::kShamirShareBytes;
static_assert(kSealedShareBytes == crypto::kAeadOverheadBytes + kPlaintextBytes);

// The start of every signed or authenticated record: its label, then the
// round and its nonce, which bind it to that round alone.
std::vector<std::uint8_t> round_record(std::string_view label, std::uint64_t round, const RoundNonce& nonce) {
  std::vector<std::uint8_t> data(label.begin(), label.end());
  base::append_le(data, round);
  base::append_bytes(data, nonce);
  return data;
}

std::vector<std::uint8_t> share_associated_data(std::uint64_t round, const RoundNonce& nonce, MemberIndex from,
                                                MemberIndex to) {
  auto data = round_record("shoal/secagg/share", round, nonce);
  base::append_le(data, from);
  base::append_le(data, to);
  return data;
}

}  // namespace

std::vector<std::uint8_t> advertisement_transcript(std::uint64_t round, const RoundNonce& nonce,
                                                   const crypto::Curve25519PublicKey& cipher_key,
                                                   const crypto::Curve25519PublicKey& mask_key) {
  auto data = round_record("shoal/secagg/advertise", round, nonce);
  base::append_bytes(data, cipher_key);
  base::append_bytes(data, mask_key);
  return data;
}

Result<SealedShare> seal_shares(const crypto::X25519KeyPair& from_cipher, MemberIndex from,
                                const crypto::Curve25519PublicKey& to_cipher, MemberIndex to, std::uint64_t round,
                                const RoundNonce& nonce, const SharePair& shares, crypto::RandomSource& random) {
  auto key = crypto::agree(from_cipher, to_cipher, "shoal/secagg/share-encryption");
  if (!key) return key.error();
  crypto::SecretBuffer plaintext(kPlaintextBytes);
  std::vector<std::uint8_t> header;
  base::append_le(header, from);
  base::append_le(header, to);
  std::memcpy(plaintext.data(), header.data(), 8);
  std::memcpy(plaintext.data() + 8, shares.mask_key.to_bytes().data(), crypto::kShamirShareBytes);
  std::memcpy(plaintext.data() + 8 + crypto::kShamirShareBytes, shares.self_mask.to_bytes().data(),
              crypto::kShamirShareBytes);
  const auto sealed = crypto::aead_seal(*key, plaintext.span(), share_associated_data(round, nonce, from, to), random);
  SealedShare out;
  out.peer = to;
  std::memcpy(out.sealed.data(), sealed.data(), out.sealed.size());
  return out;
}

Result<SharePair> open_shares(const crypto::X25519KeyPair& to_cipher, MemberIndex to,
                              const crypto::Curve25519PublicKey& from_cipher, MemberIndex from, std::uint64_t round,
                              const RoundNonce& nonce, const SealedShare& sealed) {
  const std::string who = "the share sealed by member " + std::to_string(from);
  auto key = crypto::agree(to_cipher, from_cipher, "shoal/secagg/share-encryption");
  if (!key) return key.error();
  auto plaintext = crypto::aead_open(*key, sealed.sealed, share_associated_data(round, nonce, from, to));
  if (!plaintext) {
    return make_error(ErrorCode::corrupt, who + " does not open: altered, replayed from another round, or not sealed to this device");
  }
  base::ByteReader reader(plaintext->data(), plaintext->size(), "share");
  auto said_from = reader.read_le<std::uint32_t>("sender");
  auto said_to = reader.read_le<std::uint32_t>("recipient");
  if (!said_from || !said_to || *said_from != from || *said_to != to) {
    return make_error(ErrorCode::corrupt, who + " names another sender or recipient");
  }
  auto mask_key = crypto::ShamirShare::from_bytes(plaintext->span().subspan(8, crypto::kShamirShareBytes));
  auto self_mask = crypto::ShamirShare::from_bytes(plaintext->span().subspan(8 + crypto::kShamirShareBytes));
  if (!mask_key) return make_error(ErrorCode::corrupt, who + ": " + mask_key.error().message);
  if (!self_mask) return make_error(ErrorCode::corrupt, who + ": " + self_mask.error().message);
  return SharePair{std::move(mask_key).value(), std::move(self_mask).value()};
}

Result<crypto::MaskSeed> pairwise_seed(const crypto::X25519KeyPair& mine, const crypto::Curve25519PublicKey& theirs) {
  auto key = crypto::agree(mine, theirs, "shoal/secagg/pairwise-mask");
  if (!key) return key.error();
  return crypto::MaskSeed(key->span());
}

void apply_mask(std::span<std::uint32_t> out, std::uint64_t first, const crypto::MaskStream& stream, bool subtract) {
  // Expand in pieces that stay in L1, then add: one pass over `out`.
  constexpr std::size_t kPiece = 4096;
  alignas(64) std::uint32_t words[kPiece];
  for (std::size_t done = 0; done < out.size(); done += kPiece) {
    const std::size_t count = std::min(kPiece, out.size() - done);
    stream.expand(first + done, std::span(words, count));
    std::uint32_t* target = out.data() + done;
    if (subtract) {
      for (std::size_t i = 0; i < count; ++i) target[i] -= words[i];
    } else {
      for (std::size_t i = 0; i < count; ++i) target[i] += words[i];
    }
  }
  crypto::wipe(words, sizeof words);
}

void reduce(std::span<std::uint32_t> words, unsigned bits) {
  if (bits >= 32) return;
  const std::uint32_t mask = (std::uint32_t{1} << bits) - 1;
  for (auto& word : words) word &= mask;
}

}  // namespace shoal::protocol::secagg
