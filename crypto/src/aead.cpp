#include "shoal/crypto/aead.h"

#include <sodium.h>

#include "sodium_init.h"

namespace shoal::crypto {

static_assert(kAeadKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(kAeadNonceBytes == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kAeadTagBytes == crypto_aead_xchacha20poly1305_ietf_ABYTES);

std::vector<std::uint8_t> aead_seal(const AeadKey& key, std::span<const std::uint8_t> plaintext,
                                    std::span<const std::uint8_t> associated_data, RandomSource& random) {
  detail::ensure_sodium();
  std::vector<std::uint8_t> sealed(kAeadNonceBytes + plaintext.size() + kAeadTagBytes);
  random.fill(std::span(sealed).first(kAeadNonceBytes));
  unsigned long long ciphertext_length = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      sealed.data() + kAeadNonceBytes, &ciphertext_length, plaintext.data(), plaintext.size(),
      associated_data.data(), associated_data.size(), nullptr, sealed.data(), key.data());
  return sealed;
}

Result<SecretBuffer> aead_open(const AeadKey& key, std::span<const std::uint8_t> sealed,
                               std::span<const std::uint8_t> associated_data) {
  detail::ensure_sodium();
  if (sealed.size() < kAeadOverheadBytes) {
    return make_error(ErrorCode::corrupt, "sealed message is " + std::to_string(sealed.size()) +
                                              " bytes, shorter than the " +
                                              std::to_string(kAeadOverheadBytes) +
                                              "-byte nonce and tag (truncated?)");
  }
  SecretBuffer plaintext(sealed.size() - kAeadOverheadBytes);
  unsigned long long plaintext_length = 0;
  const auto ciphertext = sealed.subspan(kAeadNonceBytes);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          plaintext.data(), &plaintext_length, nullptr, ciphertext.data(), ciphertext.size(),
          associated_data.data(), associated_data.size(), sealed.data(), key.data()) != 0) {
    return make_error(ErrorCode::verification,
                      "sealed message failed authentication: tampered, truncated, or sealed under "
                      "another key or associated data");
  }
  return plaintext;
}

}  // namespace shoal::crypto
