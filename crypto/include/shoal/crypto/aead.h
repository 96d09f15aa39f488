// Authenticated encryption: XChaCha20-Poly1305 (IETF) with associated data.
// Used to encrypt secret shares that the server relays between devices: the
// associated data binds a ciphertext to its round, sender and recipient, so a
// share cannot be replayed into another round or redirected.
//
// The sealed form is nonce (24 bytes, random) || ciphertext || tag (16 bytes).
// A tampered, truncated or misaddressed message fails to open with an error;
// no plaintext is ever returned for it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/crypto/random_source.h"
#include "shoal/crypto/secret.h"

namespace shoal::crypto {

inline constexpr std::size_t kAeadKeyBytes = 32;    // crypto_aead_xchacha20poly1305_ietf_KEYBYTES
inline constexpr std::size_t kAeadNonceBytes = 24;  // crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
inline constexpr std::size_t kAeadTagBytes = 16;    // crypto_aead_xchacha20poly1305_ietf_ABYTES
inline constexpr std::size_t kAeadOverheadBytes = kAeadNonceBytes + kAeadTagBytes;

using AeadKey = SecretBytes<kAeadKeyBytes>;

// The nonce comes from `random`.
std::vector<std::uint8_t> aead_seal(const AeadKey& key, std::span<const std::uint8_t> plaintext,
                                    std::span<const std::uint8_t> associated_data,
                                    RandomSource& random = system_random());

Result<SecretBuffer> aead_open(const AeadKey& key, std::span<const std::uint8_t> sealed,
                               std::span<const std::uint8_t> associated_data);

}  // namespace shoal::crypto
