#include "shoal/crypto/key_agreement.h"

#include <catch2/catch.hpp>

#include "hex.h"
#include "shoal/crypto/encoding.h"

using namespace shoal::crypto;
using shoal::testing::array_from_hex;

namespace {

Curve25519SecretKey secret_from_hex(const char* hex) {
  const auto bytes = array_from_hex<32>(hex);
  return Curve25519SecretKey(std::span<const std::uint8_t, 32>(bytes));
}

}  // namespace

TEST_CASE("X25519 matches the RFC 7748 section 5.2 scalar multiplication vectors") {
  auto out = x25519(secret_from_hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                    array_from_hex<32>("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"));
  REQUIRE(out);
  CHECK(to_hex(out->span()) == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
}

TEST_CASE("X25519 Diffie-Hellman matches RFC 7748 section 6.1") {
  const auto alice = X25519KeyPair::from_secret(
      secret_from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
  const auto bob = X25519KeyPair::from_secret(
      secret_from_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
  CHECK(to_hex(alice.public_key) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  CHECK(to_hex(bob.public_key) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const char* shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  auto ab = x25519(alice.secret_key, bob.public_key);
  auto ba = x25519(bob.secret_key, alice.public_key);
  REQUIRE(ab);
  REQUIRE(ba);
  CHECK(to_hex(ab->span()) == shared);
  CHECK(to_hex(ba->span()) == shared);
}

TEST_CASE("agree gives both peers the same key, and different keys for different contexts") {
  const auto alice = X25519KeyPair::generate();
  const auto bob = X25519KeyPair::generate();
  auto ab = agree(alice, bob.public_key, "shoal/test/a");
  auto ba = agree(bob, alice.public_key, "shoal/test/a");
  auto other = agree(alice, bob.public_key, "shoal/test/b");
  REQUIRE(ab);
  REQUIRE(ba);
  REQUIRE(other);
  CHECK(*ab == *ba);
  CHECK_FALSE(*ab == *other);
  // The derived key is not the raw X25519 output.
  CHECK_FALSE(*ab == *x25519(alice.secret_key, bob.public_key));
}

TEST_CASE("agreement with a small-order public key is refused") {
  const auto alice = X25519KeyPair::generate();
  const Curve25519PublicKey zero_point{};  // u = 0 has order 4
  auto key = agree(alice, zero_point, "shoal/test");
  REQUIRE_FALSE(key);
  CHECK(key.error().code == shoal::ErrorCode::verification);
  CHECK(key.error().message.find("small order") != std::string::npos);
}
