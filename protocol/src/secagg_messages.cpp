#include "shoal/protocol/secagg_messages.h"

#include <cmath>
#include <cstring>

#include "assign_field.h"
#include "shoal/base/byte_io.h"

namespace shoal::protocol {
namespace {

using detail::assign;

constexpr std::size_t kMaxMembers = crypto::kShamirMaxShares;
constexpr std::size_t kRosterEntryBytes = 4 + 32 + 32 + 32 + 64;
constexpr std::size_t kSealedShareRecordBytes = 4 + kSealedShareBytes;
constexpr std::size_t kRevealedShareBytes = 4 + 1 + crypto::kShamirShareBytes;

DecodeError invalid(const std::string& field, const std::string& rule) {
  return DecodeError{DecodeFault::invalid_value, field, rule};
}

template <std::size_t N>
void append(std::vector<std::uint8_t>& out, const std::array<std::uint8_t, N>& bytes) {
  base::append_bytes(out, bytes);
}

template <std::size_t N>
Decoded<std::array<std::uint8_t, N>> read_fixed(const FieldMap& fields, const char* key) {
  auto bytes = fields.get_bytes(key);
  if (!bytes) return bytes.error();
  if (bytes->size() != N) return invalid(key, "must be " + std::to_string(N) + " bytes, not " + std::to_string(bytes->size()));
  std::array<std::uint8_t, N> out;
  std::memcpy(out.data(), bytes->data(), N);
  return out;
}

// A bytes field holding `record_bytes`-sized records, each read by `read_one`.
template <typename Record, typename ReadOne>
Decoded<std::vector<Record>> read_records(const FieldMap& fields, const char* key, std::size_t record_bytes,
                                          ReadOne read_one) {
  auto bytes = fields.get_bytes(key);
  if (!bytes) return bytes.error();
  if (bytes->size() % record_bytes != 0) {
    return invalid(key, "must hold whole " + std::to_string(record_bytes) + "-byte records, not " +
                            std::to_string(bytes->size()) + " bytes");
  }
  const std::size_t count = bytes->size() / record_bytes;
  if (count > kMaxMembers) return invalid(key, "more than 65535 records");
  std::vector<Record> records(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto* at = bytes->data() + i * record_bytes;
    std::uint32_t index = 0;
    for (int b = 0; b < 4; ++b) index |= std::uint32_t{at[b]} << (8 * b);
    if (index == 0 || index > kMaxMembers) {
      return invalid(std::string(key) + "[" + std::to_string(i) + "]", "member index must be in [1, 65535]");
    }
    if (auto e = read_one(records[i], index, at + 4)) return *e;
  }
  return records;
}

template <std::size_t N>
void copy_out(std::array<std::uint8_t, N>& target, const std::uint8_t*& at) {
  std::memcpy(target.data(), at, N);
  at += N;
}

std::vector<std::uint8_t> write_sealed(const std::vector<SealedShare>& shares) {
  std::vector<std::uint8_t> out;
  out.reserve(shares.size() * kSealedShareRecordBytes);
  for (const auto& share : shares) {
    base::append_le(out, share.peer);
    append(out, share.sealed);
  }
  return out;
}

Decoded<std::vector<SealedShare>> read_sealed(const FieldMap& fields) {
  return read_records<SealedShare>(fields, "shares", kSealedShareRecordBytes,
                                   [](SealedShare& share, MemberIndex peer, const std::uint8_t* at) {
                                     share.peer = peer;
                                     copy_out(share.sealed, at);
                                     return std::optional<DecodeError>();
                                   });
}

Decoded<std::vector<MemberIndex>> read_indices(const FieldMap& fields, const char* key) {
  auto values = fields.get_uint_array(key);
  if (!values) return values.error();
  if (values->size() > kMaxMembers) return invalid(key, "more than 65535 members");
  std::vector<MemberIndex> indices;
  for (auto value : *values) {
    if (value == 0 || value > kMaxMembers) return invalid(key, "member index must be in [1, 65535]");
    indices.push_back(static_cast<MemberIndex>(value));
  }
  return indices;
}

}  // namespace

std::optional<DecodeError> SecureParams::check() const {
  if (threshold < 1 || threshold > kMaxMembers) return invalid("secure.threshold", "must be in [1, 65535]");
  if (bits < 8 || bits > 32) return invalid("secure.bits", "must be in [8, 32]");
  if (!(scale > 0) || !std::isfinite(scale)) return invalid("secure.scale", "must be positive");
  if (!(range > 0) || !std::isfinite(range)) return invalid("secure.range", "must be positive");
  return std::nullopt;
}

void AdvertiseKeys::write(HeaderWriter& header) const {
  header.put("round", round)
      .put_bytes("cipher_key", cipher_key)
      .put_bytes("mask_key", mask_key)
      .put_bytes("signature", signature);
}

Decoded<AdvertiseKeys> AdvertiseKeys::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  AdvertiseKeys message;
  if (auto e = assign(message.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(message.cipher_key, read_fixed<32>(fields, "cipher_key"))) return *e;
  if (auto e = assign(message.mask_key, read_fixed<32>(fields, "mask_key"))) return *e;
  if (auto e = assign(message.signature, read_fixed<64>(fields, "signature"))) return *e;
  return message;
}

void KeyRoster::write(HeaderWriter& header) const {
  std::vector<std::uint8_t> entries;
  entries.reserve(neighbours.size() * kRosterEntryBytes);
  for (const auto& entry : neighbours) {
    base::append_le(entries, entry.index);
    append(entries, entry.identity);
    append(entries, entry.cipher_key);
    append(entries, entry.mask_key);
    append(entries, entry.signature);
  }
  header.put("round", round).put("index", std::uint64_t{index}).put_bytes("neighbours", entries);
}

Decoded<KeyRoster> KeyRoster::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  KeyRoster message;
  std::uint64_t index = 0;
  if (auto e = assign(message.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(index, fields.get_uint("index"))) return *e;
  if (index == 0 || index > kMaxMembers) return invalid("index", "must be in [1, 65535]");
  message.index = static_cast<MemberIndex>(index);
  auto entries = read_records<RosterEntry>(fields, "neighbours", kRosterEntryBytes,
                                           [](RosterEntry& entry, MemberIndex peer, const std::uint8_t* at) {
                                             entry.index = peer;
                                             copy_out(entry.identity, at);
                                             copy_out(entry.cipher_key, at);
                                             copy_out(entry.mask_key, at);
                                             copy_out(entry.signature, at);
                                             return std::optional<DecodeError>();
                                           });
  if (auto e = assign(message.neighbours, std::move(entries))) return *e;
  return message;
}

template <MessageType Type>
void SealedShares<Type>::write(HeaderWriter& header) const {
  header.put("round", round).put_bytes("shares", write_sealed(shares));
}

template <MessageType Type>
Decoded<SealedShares<Type>> SealedShares<Type>::read(const Envelope& envelope) {
  SealedShares message;
  if (auto e = assign(message.round, envelope.header().get_uint("round"))) return *e;
  if (auto e = assign(message.shares, read_sealed(envelope.header()))) return *e;
  return message;
}

template struct SealedShares<MessageType::share_keys>;
template struct SealedShares<MessageType::share_bundle>;

void MaskedInput::write(HeaderWriter& header) const {
  header.put("round", round).put("offset", offset).put("loss_after", loss_after).put("accuracy_after", accuracy_after);
}

Decoded<MaskedInput> MaskedInput::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  MaskedInput message;
  if (auto e = assign(message.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(message.offset, fields.get_uint("offset"))) return *e;
  if (auto e = assign(message.loss_after, fields.get_double("loss_after"))) return *e;
  if (auto e = assign(message.accuracy_after, fields.get_double("accuracy_after"))) return *e;
  if (!std::isfinite(message.loss_after)) return invalid("loss_after", "must be finite");
  if (!(message.accuracy_after >= 0 && message.accuracy_after <= 1)) return invalid("accuracy_after", "must be in [0, 1]");
  if (envelope.payload_count() != 1 || envelope.payload(0).size() % 4 != 0) {
    return DecodeError{DecodeFault::missing_frame, "input", "a masked input part carries uint32 words as one payload frame"};
  }
  return message;
}

void UnmaskRequest::write(HeaderWriter& header) const {
  const std::vector<std::uint64_t> self(self_mask_of.begin(), self_mask_of.end());
  const std::vector<std::uint64_t> keys(mask_key_of.begin(), mask_key_of.end());
  header.put("round", round).put("self_mask_of", std::span<const std::uint64_t>(self)).put(
      "mask_key_of", std::span<const std::uint64_t>(keys));
}

Decoded<UnmaskRequest> UnmaskRequest::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  UnmaskRequest message;
  if (auto e = assign(message.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(message.self_mask_of, read_indices(fields, "self_mask_of"))) return *e;
  if (auto e = assign(message.mask_key_of, read_indices(fields, "mask_key_of"))) return *e;
  return message;
}

void UnmaskResponse::write(HeaderWriter& header) const {
  std::vector<std::uint8_t> records;
  records.reserve(shares.size() * kRevealedShareBytes);
  for (const auto& share : shares) {
    base::append_le(records, share.owner);
    base::append_u8(records, static_cast<std::uint8_t>(share.kind));
    append(records, share.share);
  }
  header.put("round", round).put_bytes("shares", records);
}

Decoded<UnmaskResponse> UnmaskResponse::read(const Envelope& envelope) {
  UnmaskResponse message;
  if (auto e = assign(message.round, envelope.header().get_uint("round"))) return *e;
  auto shares = read_records<RevealedShare>(
      envelope.header(), "shares", kRevealedShareBytes,
      [](RevealedShare& share, MemberIndex owner, const std::uint8_t* at) -> std::optional<DecodeError> {
        share.owner = owner;
        if (*at != 1 && *at != 2) return invalid("shares", "share kind must be 1 (self mask) or 2 (mask key)");
        share.kind = static_cast<ShareKind>(*at++);
        copy_out(share.share, at);
        return std::nullopt;
      });
  if (auto e = assign(message.shares, std::move(shares))) return *e;
  return message;
}

}  // namespace shoal::protocol
