#include "shoal/updater/tuf_key.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>

#include "shoal/crypto/encoding.h"
#include "shoal/updater/tuf_metadata.h"

namespace shoal::updater {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxPemBytes = 16 * 1024;  // an RSA-16384 public key is ~2.9 KB in PEM

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using KeyHandle = std::unique_ptr<EVP_PKEY, KeyFree>;

KeyHandle read_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return nullptr;
  KeyHandle key(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return key;
}

bool is_p256(EVP_PKEY* key) {
  char group[64] = {};
  std::size_t length = 0;
  return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
         EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &length) == 1 &&
         std::string_view(group, length) == "prime256v1";
}

// SHA-256 verification by OpenSSL: ECDSA (DER) or RSA-PSS (MGF1-SHA-256, any salt length).
bool verify_with_openssl(const TufKey& key, std::span<const std::uint8_t> message,
                         std::span<const std::uint8_t> signature) {
  KeyHandle public_key = read_pem(key.public_pem);
  if (!public_key) return false;
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  if (context == nullptr) return false;
  EVP_PKEY_CTX* settings = nullptr;
  bool valid = EVP_DigestVerifyInit(context, &settings, EVP_sha256(), nullptr, public_key.get()) == 1;
  if (valid && key.scheme == KeyScheme::rsa_pss_sha256) {
    valid = EVP_PKEY_CTX_set_rsa_padding(settings, RSA_PKCS1_PSS_PADDING) == 1 &&
            EVP_PKEY_CTX_set_rsa_mgf1_md(settings, EVP_sha256()) == 1 &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(settings, RSA_PSS_SALTLEN_AUTO) == 1;
  }
  valid = valid && EVP_DigestVerify(context, signature.data(), signature.size(), message.data(), message.size()) == 1;
  EVP_MD_CTX_free(context);
  return valid;
}

}  // namespace

TufKey TufKey::from_ed25519(const crypto::Ed25519PublicKey& key) {
  TufKey tuf;
  tuf.scheme = KeyScheme::ed25519;
  tuf.ed25519 = key;
  tuf.object = key_json(key);
  return tuf;
}

Result<TufKey> parse_tuf_key(const json& key, std::string_view where) {
  auto bad = [&](const std::string& what) {
    return make_error(ErrorCode::corrupt, std::string(where) + " " + what);
  };
  if (!key.is_object()) return bad("must be an object");
  const auto type = key.find("keytype");
  const auto scheme = key.find("scheme");
  const auto keyval = key.find("keyval");
  if (type == key.end() || !type->is_string() || scheme == key.end() || !scheme->is_string()) {
    return bad("needs keytype and scheme strings");
  }
  if (keyval == key.end() || !keyval->is_object() || !keyval->contains("public") || !(*keyval)["public"].is_string()) {
    return bad("needs keyval.public, a string");
  }
  const auto& public_text = (*keyval)["public"].get_ref<const std::string&>();
  const std::string type_name = type->get<std::string>(), scheme_name = scheme->get<std::string>();
  TufKey parsed;
  parsed.object = key;
  if (type_name == "ed25519" && scheme_name == "ed25519") {
    auto bytes = crypto::array_from_hex<crypto::kEd25519PublicKeyBytes>(public_text, "keyval.public");
    if (!bytes) return bad("keyval.public is not 32 bytes of hex");
    parsed.ed25519 = *bytes;
    return parsed;
  }
  const bool ecdsa = (type_name == "ecdsa" || type_name == "ecdsa-sha2-nistp256") && scheme_name == "ecdsa-sha2-nistp256";
  const bool rsa = type_name == "rsa" && scheme_name == "rsassa-pss-sha256";
  if (!ecdsa && !rsa) {
    return make_error(ErrorCode::unsupported, std::string(where) + " is a " +
                                                  crypto::printable_text(type_name.substr(0, 64)) + " key with scheme " +
                                                  crypto::printable_text(scheme_name.substr(0, 64)) +
                                                  "; this build reads ed25519, ecdsa-sha2-nistp256 and rsassa-pss-sha256");
  }
  if (public_text.size() > kMaxPemBytes) return bad("keyval.public is longer than " + std::to_string(kMaxPemBytes) + " bytes");
  KeyHandle public_key = read_pem(public_text);
  if (!public_key) return bad("keyval.public is not a PEM public key");
  if (ecdsa && !is_p256(public_key.get())) return bad("is not an ECDSA key on P-256");
  if (rsa && (EVP_PKEY_get_base_id(public_key.get()) != EVP_PKEY_RSA || EVP_PKEY_get_bits(public_key.get()) < 2048)) {
    return bad("is not an RSA key of at least 2048 bits");
  }
  parsed.scheme = ecdsa ? KeyScheme::ecdsa_p256_sha256 : KeyScheme::rsa_pss_sha256;
  parsed.public_pem = public_text;
  return parsed;
}

bool verify_tuf_signature(const TufKey& key, std::span<const std::uint8_t> message,
                          std::span<const std::uint8_t> signature) {
  if (key.scheme == KeyScheme::ed25519) {
    if (!key.ed25519 || signature.size() != crypto::kEd25519SignatureBytes) return false;
    auto identity = crypto::PublicIdentity::from_ed25519(*key.ed25519);
    crypto::Ed25519Signature sig{};
    std::copy(signature.begin(), signature.end(), sig.begin());
    return identity && identity->verify(message, sig);
  }
  if (signature.empty() || signature.size() > 2048) return false;
  return verify_with_openssl(key, message, signature);
}

}  // namespace shoal::updater
