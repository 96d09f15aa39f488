// The public keys TUF metadata may hold, and the check of their signatures,
// in the forms the specification names and python-tuf (securesystemslib)
// and go-tuf write:
//
//   keytype "ed25519", scheme "ed25519": keyval.public is 32 bytes of hex
//   keytype "ecdsa" (or "ecdsa-sha2-nistp256"), scheme "ecdsa-sha2-nistp256":
//     a PEM public key on P-256, signatures DER-encoded over SHA-256
//   keytype "rsa", scheme "rsassa-pss-sha256": a PEM public key, RSA-PSS
//     signatures with MGF1-SHA-256 and any salt length
//
// shoal signs with ed25519 only (libsodium); the other two are verified
// with OpenSSL's libcrypto, so that metadata made by other TUF tools reads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"

namespace shoal::updater {

enum class KeyScheme { ed25519, ecdsa_p256_sha256, rsa_pss_sha256 };

struct TufKey {
  KeyScheme scheme = KeyScheme::ed25519;
  std::optional<crypto::Ed25519PublicKey> ed25519;  // set for KeyScheme::ed25519
  std::string public_pem;                           // set for the others
  nlohmann::json object;                            // the key object as stored: its id is the hash of this

  // The ed25519 key a shoal release key is, as TUF writes it.
  static TufKey from_ed25519(const crypto::Ed25519PublicKey& key);
  bool operator==(const TufKey&) const = default;
};

// Reads a key object of root's "keys" (or a delegation's); `where` names it
// in errors. An unknown keytype or scheme is ErrorCode::unsupported.
Result<TufKey> parse_tuf_key(const nlohmann::json& key, std::string_view where);

// Whether `signature` is `key`'s over `message`. A signature of the wrong
// length or form is simply not valid.
bool verify_tuf_signature(const TufKey& key, std::span<const std::uint8_t> message,
                          std::span<const std::uint8_t> signature);

}  // namespace shoal::updater
