#include "shoal/crypto/identity.h"

#include <catch2/catch.hpp>

#include "hex.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_agreement.h"

using namespace shoal::crypto;
using shoal::testing::array_from_hex;
using shoal::testing::bytes_from_hex;

namespace {

struct Rfc8032Vector {
  const char* secret;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 section 7.1, TEST 1 to TEST 3.
const Rfc8032Vector kVectors[] = {
    {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

Ed25519Seed seed_from_hex(const char* hex) {
  const auto bytes = array_from_hex<32>(hex);
  return Ed25519Seed(std::span<const std::uint8_t, 32>(bytes));
}

}  // namespace

TEST_CASE("Ed25519 keys and signatures match the RFC 8032 test vectors") {
  for (const auto& vector : kVectors) {
    const auto keys = IdentityKeyPair::from_seed(seed_from_hex(vector.secret));
    CHECK(to_hex(keys.public_identity().ed25519()) == vector.public_key);
    const auto message = bytes_from_hex(vector.message);
    const auto signature = keys.sign(message);
    CHECK(to_hex(signature) == vector.signature);
    CHECK(keys.public_identity().verify(message, signature));
  }
}

TEST_CASE("a signature does not verify for another message or another key") {
  const auto alice = IdentityKeyPair::generate();
  const auto bob = IdentityKeyPair::generate();
  const std::vector<std::uint8_t> message = {1, 2, 3, 4};
  auto signature = alice.sign(message);
  CHECK(alice.public_identity().verify(message, signature));
  CHECK_FALSE(bob.public_identity().verify(message, signature));
  const std::vector<std::uint8_t> other = {1, 2, 3, 5};
  CHECK_FALSE(alice.public_identity().verify(other, signature));
  signature[10] ^= 0x01;
  CHECK_FALSE(alice.public_identity().verify(message, signature));
}

TEST_CASE("a public key that is not a curve point is refused with its hex in the message") {
  // y = 2 is not the y-coordinate of any Ed25519 point.
  Ed25519PublicKey invalid{};
  invalid[0] = 2;
  auto identity = PublicIdentity::from_ed25519(invalid);
  REQUIRE_FALSE(identity);
  CHECK(identity.error().message.find(to_hex(invalid)) != std::string::npos);
}

TEST_CASE("the Curve25519 forms of two identities agree on one shared secret") {
  const auto alice = IdentityKeyPair::generate();
  const auto bob = IdentityKeyPair::generate();
  auto ab = x25519(alice.curve25519_secret(), bob.public_identity().curve25519());
  auto ba = x25519(bob.curve25519_secret(), alice.public_identity().curve25519());
  REQUIRE(ab);
  REQUIRE(ba);
  CHECK(*ab == *ba);
  // The converted secret really is the scalar of the converted public key.
  CHECK(X25519KeyPair::from_secret(alice.curve25519_secret()).public_key == alice.public_identity().curve25519());
}

TEST_CASE("a key id is 16 hex digits, stable for a key and distinct between keys") {
  const auto a = IdentityKeyPair::generate().public_identity();
  const auto b = IdentityKeyPair::generate().public_identity();
  CHECK(a.key_id().size() == 16);
  CHECK(a.key_id() == PublicIdentity::from_ed25519(a.ed25519())->key_id());
  CHECK(a.key_id() != b.key_id());
}
