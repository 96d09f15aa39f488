#include "shoal/crypto/shamir.h"

#include <sodium.h>

#include <catch2/catch.hpp>

using namespace shoal::crypto;

namespace {

ShamirSecret random_secret() {
  ShamirSecret secret;
  REQUIRE(sodium_init() >= 0);
  randombytes_buf(secret.data(), secret.size());
  return secret;
}

// Calls `visit` with every subset of {0..n-1} of size k, as index lists.
template <typename Visit>
void for_each_subset(unsigned n, unsigned k, Visit visit) {
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    if (static_cast<unsigned>(__builtin_popcount(mask)) != k) continue;
    std::vector<unsigned> members;
    for (unsigned i = 0; i < n; ++i) if (mask & (1u << i)) members.push_back(i);
    visit(members);
  }
}

std::vector<ShamirShare> pick(const std::vector<ShamirShare>& shares, const std::vector<unsigned>& members) {
  std::vector<ShamirShare> picked;
  for (unsigned i : members) picked.push_back(shares[i]);
  return picked;
}

}  // namespace

TEST_CASE("every t-subset of the shares reconstructs the secret and every smaller one is refused") {
  for (auto [n, t] : {std::pair{5u, 3u}, {6u, 4u}, {7u, 2u}, {4u, 4u}, {3u, 1u}}) {
    CAPTURE(n, t);
    const auto secret = random_secret();
    auto shares = shamir_split(secret, t, n);
    REQUIRE(shares);
    REQUIRE(shares->size() == n);
    for_each_subset(n, t, [&](const std::vector<unsigned>& members) {
      auto combined = shamir_combine(pick(*shares, members));
      REQUIRE(combined);
      REQUIRE(*combined == secret);
    });
    if (t > 1) {
      for_each_subset(n, t - 1, [&](const std::vector<unsigned>& members) {
        auto combined = shamir_combine(pick(*shares, members));
        REQUIRE_FALSE(combined);
        REQUIRE(combined.error().message.find("needed to reconstruct") != std::string::npos);
      });
    }
  }
}

TEST_CASE("shares at the top of the 16-bit index range reconstruct") {
  const auto secret = random_secret();
  auto shares = shamir_split(secret, 3, kShamirMaxShares);
  REQUIRE(shares);
  auto combined = shamir_combine(pick(*shares, {65534, 40000, 255}));
  REQUIRE(combined);
  CHECK(*combined == secret);
}

TEST_CASE("duplicate, zero and inconsistent shares are refused") {
  const auto secret = random_secret();
  auto shares = *shamir_split(secret, 3, 5);
  SECTION("a duplicate index") {
    auto combined = shamir_combine(pick(shares, {0, 1, 1}));
    REQUIRE_FALSE(combined);
    CHECK(combined.error().message.find("two shares have index 2") != std::string::npos);
  }
  SECTION("index zero") {
    shares[0].index = 0;
    auto combined = shamir_combine(pick(shares, {0, 1, 2}));
    REQUIRE_FALSE(combined);
    CHECK(combined.error().message.find("index 0") != std::string::npos);
  }
  SECTION("shares from two different splits") {
    auto other = *shamir_split(secret, 2, 5);
    std::vector<ShamirShare> mixed = {shares[0], shares[1], other[2]};
    auto combined = shamir_combine(mixed);
    REQUIRE_FALSE(combined);
    CHECK(combined.error().message.find("disagree on the threshold") != std::string::npos);
  }
  SECTION("no shares at all") { CHECK_FALSE(shamir_combine({})); }
}

TEST_CASE("a tampered share reconstructs a different secret") {
  const auto secret = random_secret();
  auto shares = *shamir_split(secret, 3, 5);
  shares[1].value.data()[0] ^= 1;
  auto combined = shamir_combine(pick(shares, {0, 1, 2}));
  REQUIRE(combined);
  CHECK_FALSE(*combined == secret);
}

TEST_CASE("impossible split parameters are refused") {
  const auto secret = random_secret();
  CHECK_FALSE(shamir_split(secret, 0, 5));
  CHECK_FALSE(shamir_split(secret, 6, 5));
  CHECK_FALSE(shamir_split(secret, 2, kShamirMaxShares + 1));
}

TEST_CASE("a share survives serialisation, and malformed share bytes are refused") {
  const auto secret = random_secret();
  auto shares = *shamir_split(secret, 2, 3);
  std::vector<ShamirShare> decoded;
  for (const auto& share : shares) {
    const auto bytes = share.to_bytes();
    auto back = ShamirShare::from_bytes(bytes.span());
    REQUIRE(back);
    CHECK(back->index == share.index);
    CHECK(back->threshold == share.threshold);
    decoded.push_back(*back);
  }
  CHECK(*shamir_combine(decoded) == secret);
  const auto bytes = shares[0].to_bytes();
  CHECK_FALSE(ShamirShare::from_bytes(bytes.span().first(kShamirShareBytes - 1)));
  auto zero_index = bytes;
  zero_index.data()[0] = zero_index.data()[1] = 0;
  CHECK_FALSE(ShamirShare::from_bytes(zero_index.span()));
}
