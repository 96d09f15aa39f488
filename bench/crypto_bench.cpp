// crypto_bench: the crypto figures secure aggregation depends on, each beside
// a baseline measured in the same run.
//
//   mask stream GB/s     vs libsodium's raw crypto_stream_chacha20   (target >= 0.9x)
//   Shamir n=100, t=67   split + reconstruct per second vs textbook log/exp tables
//   X25519 agreements/s  vs raw crypto_scalarmult per second
//
// Usage: crypto_bench [--quick]   (--quick: smaller sizes, for smoke runs)
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string_view>
#include <vector>

#include "shoal/crypto/key_agreement.h"
#include "shoal/crypto/mask_stream.h"
#include "measure.h"
#include "shoal/crypto/shamir.h"

using namespace shoal::crypto;
using shoal::bench::best_rates;

namespace {

// The textbook baseline for Shamir: GF(2^16) with log/exp tables (fast, but
// its memory accesses depend on the secret, so not constant-time), same
// polynomial as shoal's, same Horner evaluation and Lagrange interpolation.
class TableField {
 public:
  TableField() : log_(1 << 16), exp_(2 << 16) {
    std::uint32_t x = 1;
    for (std::uint32_t i = 0; i < 65535; ++i) {
      exp_[i] = exp_[i + 65535] = static_cast<std::uint16_t>(x);
      log_[x] = static_cast<std::uint16_t>(i);
      x <<= 1;  // multiply by the generator x
      if (x & 0x10000) x ^= 0x1100B;
    }
    if (x != 1) std::abort();  // x must generate the whole multiplicative group
  }
  std::uint16_t multiply(std::uint16_t a, std::uint16_t b) const {
    return a == 0 || b == 0 ? 0 : exp_[log_[a] + log_[b]];
  }
  std::uint16_t divide(std::uint16_t a, std::uint16_t b) const {
    return a == 0 ? 0 : exp_[log_[a] + 65535 - log_[b]];
  }

  // Shares of 16 elements for x = 1..n, from coefficients[k * 16 + e].
  void split(const std::vector<std::uint16_t>& coefficients, unsigned t, unsigned n,
             std::vector<std::uint16_t>& shares) const {
    for (unsigned i = 0; i < n; ++i) {
      const auto x = static_cast<std::uint16_t>(i + 1);
      for (unsigned e = 0; e < 16; ++e) {
        std::uint16_t y = coefficients[(t - 1) * 16 + e];
        for (unsigned k = t - 1; k-- > 0;) y = multiply(y, x) ^ coefficients[k * 16 + e];
        shares[i * 16 + e] = y;
      }
    }
  }
  // Element 0 of the secret from shares with x = first+1 .. first+t.
  std::uint16_t combine(const std::vector<std::uint16_t>& shares, unsigned first, unsigned t) const {
    std::uint16_t secret[16] = {};
    for (unsigned i = first; i < first + t; ++i) {
      std::uint16_t numerator = 1, denominator = 1;
      for (unsigned j = first; j < first + t; ++j) {
        if (j == i) continue;
        numerator = multiply(numerator, static_cast<std::uint16_t>(j + 1));
        denominator = multiply(denominator, static_cast<std::uint16_t>((j + 1) ^ (i + 1)));
      }
      const std::uint16_t basis = divide(numerator, denominator);
      for (unsigned e = 0; e < 16; ++e) secret[e] ^= multiply(basis, shares[i * 16 + e]);
    }
    return secret[0];
  }

 private:
  std::vector<std::uint16_t> log_, exp_;
};

// Keeps the optimiser from discarding a result.
volatile std::uint32_t sink;

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string_view(argv[1]) == "--quick";
  if (sodium_init() < 0) return 1;
  const double min_seconds = quick ? 0.05 : 0.5;
  const int rounds = quick ? 1 : 5;

  // --- Mask stream vs raw ChaCha20 keystream, same buffer size.
  const std::size_t words = quick ? (1u << 20) : (16u << 20);  // 64 MiB: well past the caches
  const double bytes = static_cast<double>(words) * 4;
  std::vector<std::uint32_t> buffer(words);
  MaskSeed seed;
  randombytes_buf(seed.data(), seed.size());
  const MaskStream stream(seed, "bench");
  unsigned char key[crypto_stream_chacha20_KEYBYTES];
  unsigned char nonce[crypto_stream_chacha20_NONCEBYTES] = {};
  randombytes_buf(key, sizeof key);

  const auto mask = best_rates(bytes, min_seconds, rounds,
                               {[&] {
                                  crypto_stream_chacha20(reinterpret_cast<unsigned char*>(buffer.data()), words * 4,
                                                         nonce, key);
                                  sink = buffer[words / 2];
                                },
                                [&] {
                                  stream.expand(0, buffer);
                                  sink = buffer[words / 2];
                                },
                                // A chunk that starts mid-stream, as parallel expansion splits the work.
                                [&] {
                                  stream.expand(1'000'003, buffer);
                                  sink = buffer[words / 2];
                                }});
  const double raw = mask[0], whole = mask[1], offset = mask[2];
  std::printf("mask stream (%zu MiB)\n", words * 4 >> 20);
  std::printf("  raw crypto_stream_chacha20           %7.3f GB/s\n", raw / 1e9);
  std::printf("  %-36s %7.3f GB/s  %.2fx raw (target >= 0.90x)\n", "MaskStream::expand from word 0", whole / 1e9,
              whole / raw);
  std::printf("  %-36s %7.3f GB/s  %.2fx raw (target >= 0.90x)\n", "MaskStream::expand from word 1000003",
              offset / 1e9, offset / raw);

  // --- Shamir n=100, t=67 on 32-byte secrets.
  ShamirSecret secret;
  randombytes_buf(secret.data(), secret.size());
  std::vector<ShamirShare> shares;
  shares = *shamir_split(secret, 67, 100);
  const TableField table;
  std::vector<std::uint16_t> coefficients(67 * 16), table_shares(100 * 16);
  randombytes_buf(coefficients.data(), coefficients.size() * 2);
  table.split(coefficients, 67, 100, table_shares);
  if (table.combine(table_shares, 33, 67) != coefficients[0]) {
    std::fprintf(stderr, "the log/exp baseline does not reconstruct its secret\n");
    return 1;
  }
  const auto shamir = best_rates(
      1, min_seconds, rounds,
      {[&] { shares = *shamir_split(secret, 67, 100); },
       [&] { sink = shamir_combine(std::span<const ShamirShare>(shares).subspan(33))->data()[0]; },
       [&] { table.split(coefficients, 67, 100, table_shares); },
       [&] { sink = table.combine(table_shares, 33, 67); }});
  const double both = 1.0 / (1.0 / shamir[0] + 1.0 / shamir[1]);
  const double table_both = 1.0 / (1.0 / shamir[2] + 1.0 / shamir[3]);
  std::printf("Shamir n=100 t=67 (GF(2^16), 32-byte secret)    shoal (constant-time)  log/exp tables\n");
  std::printf("  split                                       %9.0f /s  %9.0f /s  %.2fx\n", shamir[0], shamir[2],
              shamir[0] / shamir[2]);
  std::printf("  reconstruct                                 %9.0f /s  %9.0f /s  %.2fx\n", shamir[1], shamir[3],
              shamir[1] / shamir[3]);
  std::printf("  split + reconstruct                         %9.0f /s  %9.0f /s  %.2fx\n", both, table_both,
              both / table_both);

  // --- X25519: shoal's agree() (X25519 + BLAKE2b KDF) vs raw scalar multiplication.
  const auto mine = X25519KeyPair::generate();
  const auto theirs = X25519KeyPair::generate();
  unsigned char shared[crypto_scalarmult_BYTES];
  const auto x25519_rates = best_rates(1, min_seconds, rounds,
                                       {[&] {
                                          if (crypto_scalarmult(shared, mine.secret_key.data(),
                                                                theirs.public_key.data()) != 0) {
                                            std::abort();
                                          }
                                          sink = shared[0];
                                        },
                                        [&] { sink = agree(mine, theirs.public_key, "shoal/bench")->data()[0]; }});
  const double raw_x25519 = x25519_rates[0], agreements = x25519_rates[1];
  std::printf("X25519\n");
  std::printf("  raw crypto_scalarmult  %9.0f /s\n", raw_x25519);
  std::printf("  agree() with KDF       %9.0f /s  %.2fx raw\n", agreements, agreements / raw_x25519);
  return 0;
}
