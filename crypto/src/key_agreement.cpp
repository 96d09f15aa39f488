#include "shoal/crypto/key_agreement.h"

#include <sodium.h>

#include <algorithm>

#include "shoal/crypto/hash.h"
#include "sodium_init.h"

namespace shoal::crypto {

X25519KeyPair X25519KeyPair::generate(RandomSource& random) {
  detail::ensure_sodium();
  Curve25519SecretKey secret;
  random.fill(secret.span());
  return from_secret(secret);
}

X25519KeyPair X25519KeyPair::from_secret(const Curve25519SecretKey& secret) {
  detail::ensure_sodium();
  X25519KeyPair pair;
  pair.secret_key = secret;
  crypto_scalarmult_base(pair.public_key.data(), secret.data());
  return pair;
}

Result<SecretBytes<32>> x25519(const Curve25519SecretKey& scalar, const Curve25519PublicKey& point) {
  detail::ensure_sodium();
  SecretBytes<32> out;
  // libsodium returns -1 exactly when the output is all zeros (a small-order point).
  if (crypto_scalarmult(out.data(), scalar.data(), point.data()) != 0) {
    return make_error(ErrorCode::verification,
                      "X25519 peer public key has small order; refusing the all-zero shared secret");
  }
  return out;
}

Result<SharedKey> agree(const X25519KeyPair& mine, const Curve25519PublicKey& theirs,
                        std::string_view context) {
  auto raw = x25519(mine.secret_key, theirs);
  if (!raw) return raw.error();
  // Sorting the public keys makes the derivation symmetric: both peers hash
  // the same bytes without agreeing on who is "first".
  const auto& low = std::min(mine.public_key, theirs);
  const auto& high = std::max(mine.public_key, theirs);
  const std::uint8_t context_length[2] = {static_cast<std::uint8_t>(context.size() & 0xff),
                                          static_cast<std::uint8_t>(context.size() >> 8)};
  Blake2b256 kdf(raw->span());
  kdf.update(context_length).update(context).update(low).update(high);
  const auto digest = kdf.finish();
  SharedKey key(std::span<const std::uint8_t, 32>(digest.data(), 32));
  return key;
}

}  // namespace shoal::crypto
