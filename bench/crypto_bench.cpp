// crypto_bench: the crypto figures secure aggregation depends on, each beside
// a baseline measured in the same run.
//
//   mask stream GB/s     vs libsodium's raw crypto_stream_chacha20   (target >= 0.9x)
//   Shamir n=100, t=67   split + reconstruct per second
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
#include "shoal/crypto/shamir.h"

using namespace shoal::crypto;
using Clock = std::chrono::steady_clock;

namespace {

// Runs `body` (which does `work_per_call` units) repeatedly for at least
// `min_seconds`, `rounds` times, and returns the best rate in units/second.
double best_rate(double work_per_call, double min_seconds, int rounds, const std::function<void()>& body) {
  double best = 0;
  for (int round = 0; round < rounds; ++round) {
    long calls = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    do {
      body();
      ++calls;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < min_seconds);
    best = std::max(best, calls * work_per_call / elapsed);
  }
  return best;
}

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

  const double raw = best_rate(bytes, min_seconds, rounds, [&] {
    crypto_stream_chacha20(reinterpret_cast<unsigned char*>(buffer.data()), words * 4, nonce, key);
    sink = buffer[words / 2];
  });
  const double whole = best_rate(bytes, min_seconds, rounds, [&] {
    stream.expand(0, buffer);
    sink = buffer[words / 2];
  });
  // A chunk that starts mid-stream (how parallel expansion splits the work).
  const double offset = best_rate(bytes, min_seconds, rounds, [&] {
    stream.expand(1'000'003, buffer);
    sink = buffer[words / 2];
  });
  std::printf("mask stream (%zu MiB)\n", words * 4 >> 20);
  std::printf("  raw crypto_stream_chacha20     %7.3f GB/s\n", raw / 1e9);
  std::printf("  MaskStream::expand from 0      %7.3f GB/s  %.2fx raw (target >= 0.90x)\n", whole / 1e9, whole / raw);
  std::printf("  MaskStream::expand mid-stream  %7.3f GB/s  %.2fx raw (target >= 0.90x)\n", offset / 1e9,
              offset / raw);

  // --- Shamir n=100, t=67 on 32-byte secrets.
  ShamirSecret secret;
  randombytes_buf(secret.data(), secret.size());
  std::vector<ShamirShare> shares;
  const double split_rate = best_rate(1, min_seconds, rounds, [&] { shares = *shamir_split(secret, 67, 100); });
  const auto used = std::span<const ShamirShare>(shares).subspan(33);  // the last 67 shares
  const double combine_rate = best_rate(1, min_seconds, rounds, [&] { sink = shamir_combine(used)->data()[0]; });
  const double both_rate = 1.0 / (1.0 / split_rate + 1.0 / combine_rate);
  std::printf("Shamir n=100 t=67 (GF(2^16), 32-byte secret)\n");
  std::printf("  split                %9.0f /s\n", split_rate);
  std::printf("  reconstruct          %9.0f /s\n", combine_rate);
  std::printf("  split + reconstruct  %9.0f /s\n", both_rate);

  // --- X25519: shoal's agree() (X25519 + BLAKE2b KDF) vs raw scalar multiplication.
  const auto mine = X25519KeyPair::generate();
  const auto theirs = X25519KeyPair::generate();
  unsigned char shared[crypto_scalarmult_BYTES];
  const double raw_x25519 = best_rate(1, min_seconds, rounds, [&] {
    if (crypto_scalarmult(shared, mine.secret_key.data(), theirs.public_key.data()) != 0) std::abort();
    sink = shared[0];
  });
  const double agreements = best_rate(1, min_seconds, rounds, [&] {
    sink = agree(mine, theirs.public_key, "shoal/bench")->data()[0];
  });
  std::printf("X25519\n");
  std::printf("  raw crypto_scalarmult  %9.0f /s\n", raw_x25519);
  std::printf("  agree() with KDF       %9.0f /s  %.2fx raw\n", agreements, agreements / raw_x25519);
  return 0;
}
