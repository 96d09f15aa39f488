#include "shoal/crypto/identity.h"

#include <sodium.h>

#include <stdexcept>

#include "shoal/crypto/encoding.h"
#include "shoal/crypto/hash.h"
#include "sodium_init.h"

namespace shoal::crypto {

static_assert(kEd25519PublicKeyBytes == crypto_sign_PUBLICKEYBYTES);
static_assert(kEd25519SeedBytes == crypto_sign_SEEDBYTES);
static_assert(kEd25519SecretKeyBytes == crypto_sign_SECRETKEYBYTES);
static_assert(kEd25519SignatureBytes == crypto_sign_BYTES);
static_assert(kCurve25519KeyBytes == crypto_scalarmult_BYTES);

Result<PublicIdentity> PublicIdentity::from_ed25519(const Ed25519PublicKey& key) {
  detail::ensure_sodium();
  PublicIdentity identity;
  identity.ed25519_ = key;
  if (crypto_sign_ed25519_pk_to_curve25519(identity.curve25519_.data(), key.data()) != 0) {
    return make_error(ErrorCode::corrupt,
                      "ed25519:" + to_hex(key) + " is not a valid Ed25519 public key");
  }
  return identity;
}

std::string PublicIdentity::key_id() const {
  const auto digest = blake2b256(ed25519_);
  return to_hex(std::span(digest).first(8));
}

bool PublicIdentity::verify(std::span<const std::uint8_t> message,
                            const Ed25519Signature& signature) const {
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     ed25519_.data()) == 0;
}

IdentityKeyPair IdentityKeyPair::generate() {
  detail::ensure_sodium();
  Ed25519Seed seed;
  randombytes_buf(seed.data(), seed.size());
  return from_seed(seed);
}

IdentityKeyPair IdentityKeyPair::from_seed(const Ed25519Seed& seed) {
  detail::ensure_sodium();
  Ed25519PublicKey public_key{};
  SecretBytes<kEd25519SecretKeyBytes> secret;
  crypto_sign_seed_keypair(public_key.data(), secret.data(), seed.data());
  auto identity = PublicIdentity::from_ed25519(public_key);
  // A key derived from a seed is always a valid point.
  if (!identity) throw std::logic_error("libsodium derived an invalid public key");
  return IdentityKeyPair(seed, secret, std::move(identity).value());
}

Ed25519Signature IdentityKeyPair::sign(std::span<const std::uint8_t> message) const {
  Ed25519Signature signature{};
  crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(), secret_.data());
  return signature;
}

Curve25519SecretKey IdentityKeyPair::curve25519_secret() const {
  Curve25519SecretKey secret;
  crypto_sign_ed25519_sk_to_curve25519(secret.data(), secret_.data());
  return secret;
}

}  // namespace shoal::crypto
