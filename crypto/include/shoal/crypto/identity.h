// Identity keys: the Ed25519 key pair that names a device, a server or a
// release signer. The same key, converted to Curve25519, is its CurveZMQ key,
// so one key file serves both signing and transport.
//
// PublicIdentity is the shareable half (enrolment lists, pinned server keys);
// IdentityKeyPair holds the secret seed, wiped when it is destroyed.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "shoal/base/result.h"
#include "shoal/crypto/secret.h"

namespace shoal::crypto {

inline constexpr std::size_t kEd25519PublicKeyBytes = 32;  // crypto_sign_PUBLICKEYBYTES
inline constexpr std::size_t kEd25519SeedBytes = 32;       // crypto_sign_SEEDBYTES
inline constexpr std::size_t kEd25519SecretKeyBytes = 64;  // crypto_sign_SECRETKEYBYTES
inline constexpr std::size_t kEd25519SignatureBytes = 64;  // crypto_sign_BYTES
inline constexpr std::size_t kCurve25519KeyBytes = 32;     // crypto_scalarmult_BYTES

using Ed25519PublicKey = std::array<std::uint8_t, kEd25519PublicKeyBytes>;
using Ed25519Signature = std::array<std::uint8_t, kEd25519SignatureBytes>;
using Ed25519Seed = SecretBytes<kEd25519SeedBytes>;
using Curve25519PublicKey = std::array<std::uint8_t, kCurve25519KeyBytes>;
using Curve25519SecretKey = SecretBytes<kCurve25519KeyBytes>;

// The public half of an identity.
class PublicIdentity {
 public:
  // Fails if `key` is not a valid Ed25519 point (it then has no Curve25519 form).
  static Result<PublicIdentity> from_ed25519(const Ed25519PublicKey& key);

  const Ed25519PublicKey& ed25519() const { return ed25519_; }
  // The Curve25519 form: the key a CurveZMQ peer presents.
  const Curve25519PublicKey& curve25519() const { return curve25519_; }

  // A short printable id: the first 16 hex digits of BLAKE2b-256 of the
  // Ed25519 public key. For logs and people, not for access decisions.
  std::string key_id() const;

  // True if `signature` is this identity's signature over `message`.
  bool verify(std::span<const std::uint8_t> message, const Ed25519Signature& signature) const;

  friend bool operator==(const PublicIdentity& a, const PublicIdentity& b) {
    return a.ed25519_ == b.ed25519_;
  }

 private:
  PublicIdentity() = default;
  Ed25519PublicKey ed25519_{};
  Curve25519PublicKey curve25519_{};
};

// A full identity: secret seed plus its public half.
class IdentityKeyPair {
 public:
  // A fresh key pair from the operating system's random source.
  static IdentityKeyPair generate();
  // The key pair determined by a 32-byte seed (RFC 8032 "private key").
  static IdentityKeyPair from_seed(const Ed25519Seed& seed);

  const PublicIdentity& public_identity() const { return public_; }
  const Ed25519Seed& seed() const { return seed_; }

  Ed25519Signature sign(std::span<const std::uint8_t> message) const;
  // The Curve25519 secret scalar matching public_identity().curve25519().
  Curve25519SecretKey curve25519_secret() const;

 private:
  IdentityKeyPair(const Ed25519Seed& seed, const SecretBytes<kEd25519SecretKeyBytes>& secret,
                  PublicIdentity public_identity)
      : seed_(seed), secret_(secret), public_(std::move(public_identity)) {}

  Ed25519Seed seed_;
  SecretBytes<kEd25519SecretKeyBytes> secret_;
  PublicIdentity public_;
};

}  // namespace shoal::crypto
