#include "shoal/crypto/aead.h"

#include <sodium.h>

#include <catch2/catch.hpp>

using namespace shoal::crypto;
using shoal::ErrorCode;

namespace {

AeadKey random_key() {
  AeadKey key;
  REQUIRE(sodium_init() >= 0);
  randombytes_buf(key.data(), key.size());
  return key;
}

const std::vector<std::uint8_t> kPlaintext = {'s', 'h', 'a', 'r', 'e', ' ', '1', '7'};
const std::vector<std::uint8_t> kAssociated = {'r', 'o', 'u', 'n', 'd', '3'};

}  // namespace

TEST_CASE("a sealed message opens to the same plaintext") {
  const auto key = random_key();
  const auto sealed = aead_seal(key, kPlaintext, kAssociated);
  CHECK(sealed.size() == kPlaintext.size() + kAeadOverheadBytes);
  auto opened = aead_open(key, sealed, kAssociated);
  REQUIRE(opened);
  CHECK(std::vector<std::uint8_t>(opened->span().begin(), opened->span().end()) == kPlaintext);
}

TEST_CASE("sealing twice uses fresh nonces") {
  const auto key = random_key();
  CHECK(aead_seal(key, kPlaintext, kAssociated) != aead_seal(key, kPlaintext, kAssociated));
}

TEST_CASE("flipping any bit of a sealed message makes it fail to open") {
  const auto key = random_key();
  const auto sealed = aead_seal(key, kPlaintext, kAssociated);
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    auto tampered = sealed;
    tampered[i] ^= 0x01;
    auto opened = aead_open(key, tampered, kAssociated);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == ErrorCode::verification);
  }
}

TEST_CASE("a truncated sealed message fails to open") {
  const auto key = random_key();
  const auto sealed = aead_seal(key, kPlaintext, kAssociated);
  for (std::size_t length = 0; length < sealed.size(); ++length) {
    auto opened = aead_open(key, std::span(sealed).first(length), kAssociated);
    REQUIRE_FALSE(opened);
    if (length < kAeadOverheadBytes) {
      CHECK(opened.error().code == ErrorCode::corrupt);
      CHECK(opened.error().message.find("truncated") != std::string::npos);
    }
  }
}

TEST_CASE("a message opened with other associated data or another key fails") {
  const auto key = random_key();
  const auto sealed = aead_seal(key, kPlaintext, kAssociated);
  const std::vector<std::uint8_t> other_round = {'r', 'o', 'u', 'n', 'd', '4'};
  CHECK_FALSE(aead_open(key, sealed, other_round));
  CHECK_FALSE(aead_open(random_key(), sealed, kAssociated));
}

TEST_CASE("an empty plaintext is sealed and authenticated too") {
  const auto key = random_key();
  const auto sealed = aead_seal(key, {}, kAssociated);
  auto opened = aead_open(key, sealed, kAssociated);
  REQUIRE(opened);
  CHECK(opened->empty());
}
