// X25519 key agreement (RFC 7748). Secure aggregation gives each device two
// ephemeral X25519 key pairs per round; a pair of devices agrees on a shared
// key from which it derives an AEAD key (for relayed shares) or a mask seed.
//
// agree() never returns the raw X25519 output: it hashes it together with
// both public keys and a context label, so keys for different purposes and
// different peers are independent.
#pragma once

#include <string_view>

#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"
#include "shoal/crypto/random_source.h"
#include "shoal/crypto/secret.h"

namespace shoal::crypto {

using SharedKey = SecretBytes<32>;

struct X25519KeyPair {
  Curve25519PublicKey public_key{};
  Curve25519SecretKey secret_key;

  static X25519KeyPair generate(RandomSource& random = system_random());
  // The key pair whose secret scalar is `secret` (clamped by X25519 itself).
  static X25519KeyPair from_secret(const Curve25519SecretKey& secret);
};

// The raw X25519 function: scalar multiplication of `point` by `scalar`.
// Fails when the result is all zeros, i.e. `point` has small order and the
// peer could force a known "shared" value.
Result<SecretBytes<32>> x25519(const Curve25519SecretKey& scalar, const Curve25519PublicKey& point);

// The 32-byte key shared by `mine` and the holder of `theirs`, for purpose
// `context` (e.g. "shoal/secagg/share-encryption"). Both sides obtain the same
// key: BLAKE2b-256 keyed with the X25519 output, over the context and the two
// public keys in sorted order.
Result<SharedKey> agree(const X25519KeyPair& mine, const Curve25519PublicKey& theirs,
                        std::string_view context);

}  // namespace shoal::crypto
