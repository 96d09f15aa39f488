#include "shoal/crypto/shamir.h"

#include <sodium.h>

#include <string>

#include "sodium_init.h"

namespace shoal::crypto {
namespace {

constexpr std::size_t kElements = kShamirSecretBytes / 2;  // 16-bit field elements per secret
// The field is GF(2)[x] / (x^16 + x^12 + x^3 + x + 1), a primitive polynomial.

// Carry-less multiply, then reduce using x^16 = x^12 + x^3 + x + 1: each
// fold moves the bits above x^15 down; four folds take a 31-bit product to 16
// bits. Masks instead of branches keep the running time independent of the
// operands, and the shape lets the compiler vectorise loops of multiplies.
inline std::uint16_t gf_multiply(std::uint16_t a, std::uint16_t b) {
  std::uint32_t product = 0;
  for (int bit = 0; bit < 16; ++bit) {
    product ^= (static_cast<std::uint32_t>(a) << bit) & (0u - ((b >> bit) & 1u));
  }
  for (int fold = 0; fold < 4; ++fold) {
    const std::uint32_t high = product >> 16;
    product = (product & 0xffff) ^ (high << 12) ^ (high << 3) ^ (high << 1) ^ high;
  }
  return static_cast<std::uint16_t>(product);
}

// Replaces each nonzero value by its inverse, a^(2^16 - 2) (Fermat). The
// exponent is public, so the square-and-multiply sequence is fixed; it runs
// over all values at once so the compiler vectorises it.
void gf_invert_all(std::vector<std::uint16_t>& values) {
  std::vector<std::uint16_t> result(values.size(), 1);
  for (std::uint32_t exponent = 0xFFFE; exponent != 0; exponent >>= 1) {
    if (exponent & 1u) {
      for (std::size_t i = 0; i < values.size(); ++i) result[i] = gf_multiply(result[i], values[i]);
    }
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = gf_multiply(values[i], values[i]);
  }
  values.swap(result);
}

// For shares i in [begin, end): numerator_i *= x_j, denominator_i *= x_j ^ x_i.
void multiply_basis_factors(const std::uint16_t* __restrict x, std::uint16_t x_j, std::uint16_t* __restrict numerator,
                            std::uint16_t* __restrict denominator, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) {
    numerator[i] = gf_multiply(numerator[i], x_j);
    denominator[i] = gf_multiply(denominator[i], x_j ^ x[i]);
  }
}

std::uint16_t element_at(const std::uint8_t* bytes, std::size_t e) {
  return static_cast<std::uint16_t>(bytes[2 * e] | bytes[2 * e + 1] << 8);
}

void store_element(std::uint8_t* bytes, std::size_t e, std::uint16_t value) {
  bytes[2 * e] = static_cast<std::uint8_t>(value);
  bytes[2 * e + 1] = static_cast<std::uint8_t>(value >> 8);
}

Error shamir_error(const std::string& what) {
  return make_error(ErrorCode::invalid_argument, "Shamir: " + what);
}

}  // namespace

SecretBytes<kShamirShareBytes> ShamirShare::to_bytes() const {
  SecretBytes<kShamirShareBytes> out;
  out.data()[0] = static_cast<std::uint8_t>(index);
  out.data()[1] = static_cast<std::uint8_t>(index >> 8);
  out.data()[2] = static_cast<std::uint8_t>(threshold);
  out.data()[3] = static_cast<std::uint8_t>(threshold >> 8);
  std::copy(value.span().begin(), value.span().end(), out.data() + 4);
  return out;
}

Result<ShamirShare> ShamirShare::from_bytes(std::span<const std::uint8_t> bytes) {
  if (bytes.size() != kShamirShareBytes) {
    return make_error(ErrorCode::corrupt, "Shamir share is " + std::to_string(bytes.size()) +
                                              " bytes, expected " + std::to_string(kShamirShareBytes));
  }
  ShamirShare share;
  share.index = static_cast<std::uint16_t>(bytes[0] | bytes[1] << 8);
  share.threshold = static_cast<std::uint16_t>(bytes[2] | bytes[3] << 8);
  if (share.index == 0) return make_error(ErrorCode::corrupt, "Shamir share has index 0");
  if (share.threshold == 0) return make_error(ErrorCode::corrupt, "Shamir share has threshold 0");
  std::copy(bytes.begin() + 4, bytes.end(), share.value.data());
  return share;
}

Result<std::vector<ShamirShare>> shamir_split(const ShamirSecret& secret, unsigned threshold,
                                              unsigned share_count, RandomSource& random) {
  detail::ensure_sodium();
  if (threshold == 0) return shamir_error("threshold must be at least 1");
  if (share_count > kShamirMaxShares) {
    return shamir_error(std::to_string(share_count) + " shares requested, at most " +
                        std::to_string(kShamirMaxShares) + " are possible");
  }
  if (threshold > share_count) {
    return shamir_error("threshold " + std::to_string(threshold) + " exceeds the " +
                        std::to_string(share_count) + " shares requested");
  }
  // coefficients[k * kElements + e] is the x^k coefficient of element e's
  // polynomial; the 16 elements sit side by side so each Horner step is one
  // loop over them that the compiler vectorises.
  std::vector<std::uint16_t> coefficients(kElements * threshold);
  random.fill({reinterpret_cast<std::uint8_t*>(coefficients.data()), coefficients.size() * sizeof(std::uint16_t)});
  for (std::size_t e = 0; e < kElements; ++e) coefficients[e] = element_at(secret.data(), e);
  std::vector<ShamirShare> shares(share_count);
  for (unsigned i = 0; i < share_count; ++i) {
    const auto x = static_cast<std::uint16_t>(i + 1);
    std::uint16_t y[kElements];
    std::copy_n(&coefficients[(threshold - 1) * kElements], kElements, y);
    for (unsigned k = threshold - 1; k-- > 0;) {  // Horner
      const std::uint16_t* c = &coefficients[k * kElements];
      for (std::size_t e = 0; e < kElements; ++e) y[e] = gf_multiply(y[e], x) ^ c[e];
    }
    shares[i].index = x;
    shares[i].threshold = static_cast<std::uint16_t>(threshold);
    for (std::size_t e = 0; e < kElements; ++e) store_element(shares[i].value.data(), e, y[e]);
    wipe(y, sizeof y);
  }
  wipe(coefficients.data(), coefficients.size() * sizeof(std::uint16_t));
  return shares;
}

Result<ShamirSecret> shamir_combine(std::span<const ShamirShare> shares) {
  if (shares.empty()) return shamir_error("no shares given");
  const unsigned threshold = shares[0].threshold;
  if (threshold == 0) return shamir_error("share " + std::to_string(shares[0].index) + " has threshold 0");
  std::vector<bool> seen(kShamirMaxShares + 1, false);
  for (const auto& share : shares) {
    if (share.threshold != threshold) {
      return shamir_error("shares disagree on the threshold (" + std::to_string(threshold) + " and " +
                          std::to_string(share.threshold) + "): they come from different splits");
    }
    if (share.index == 0) return shamir_error("a share has index 0, which would be the secret itself");
    if (seen[share.index]) {
      return shamir_error("two shares have index " + std::to_string(share.index));
    }
    seen[share.index] = true;
  }
  if (shares.size() < threshold) {
    return shamir_error(std::to_string(shares.size()) + " shares given, " + std::to_string(threshold) +
                        " needed to reconstruct");
  }
  // Lagrange interpolation at x = 0 over the first `threshold` shares:
  // secret = sum_i y_i * prod_{j != i} x_j / (x_j - x_i), and in
  // characteristic 2, x_j - x_i is x_j ^ x_i. The basis values depend only on
  // the public indices; each step below runs over all shares at once so the
  // compiler vectorises it.
  const auto used = shares.first(threshold);
  std::vector<std::uint16_t> x(threshold), numerator(threshold, 1), denominator(threshold, 1);
  for (std::size_t i = 0; i < threshold; ++i) x[i] = used[i].index;
  for (std::size_t j = 0; j < threshold; ++j) {
    multiply_basis_factors(x.data(), x[j], numerator.data(), denominator.data(), 0, j);
    multiply_basis_factors(x.data(), x[j], numerator.data(), denominator.data(), j + 1, threshold);
  }
  gf_invert_all(denominator);
  ShamirSecret secret;
  std::uint16_t accumulated[kElements] = {};
  for (std::size_t i = 0; i < threshold; ++i) {
    const std::uint16_t basis = gf_multiply(numerator[i], denominator[i]);
    for (std::size_t e = 0; e < kElements; ++e) {
      accumulated[e] ^= gf_multiply(basis, element_at(used[i].value.data(), e));
    }
  }
  for (std::size_t e = 0; e < kElements; ++e) store_element(secret.data(), e, accumulated[e]);
  wipe(accumulated, sizeof accumulated);
  return secret;
}

}  // namespace shoal::crypto
