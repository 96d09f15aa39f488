// Secret byte containers that wipe their memory (sodium_memzero) when they
// are destroyed, so key material does not linger after a round or a command.
// Used for every private key, seed, shared key and plaintext share in shoal.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace shoal::crypto {

// Overwrites `size` bytes at `data` with zeros in a way the compiler cannot elide.
void wipe(void* data, std::size_t size);

// Compares two equal-length buffers in time independent of their contents.
bool equal_in_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

// A fixed-size secret: N bytes, zero-initialised, wiped on destruction.
template <std::size_t N>
class SecretBytes {
 public:
  static constexpr std::size_t kSize = N;

  SecretBytes() { bytes_.fill(0); }
  explicit SecretBytes(std::span<const std::uint8_t, N> source) {
    std::copy(source.begin(), source.end(), bytes_.begin());
  }
  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes&) = default;
  ~SecretBytes() { wipe(bytes_.data(), N); }

  std::uint8_t* data() { return bytes_.data(); }
  const std::uint8_t* data() const { return bytes_.data(); }
  static constexpr std::size_t size() { return N; }
  std::span<std::uint8_t, N> span() { return bytes_; }
  std::span<const std::uint8_t, N> span() const { return bytes_; }

  friend bool operator==(const SecretBytes& a, const SecretBytes& b) {
    return equal_in_constant_time(a.bytes_, b.bytes_);
  }

 private:
  std::array<std::uint8_t, N> bytes_;
};

// A variable-size secret (a decrypted share, a key file's text), wiped on
// destruction and on every reallocation it controls.
class SecretBuffer {
 public:
  SecretBuffer() = default;
  explicit SecretBuffer(std::size_t size) : bytes_(size, 0) {}
  explicit SecretBuffer(std::span<const std::uint8_t> source)
      : bytes_(source.begin(), source.end()) {}
  SecretBuffer(const SecretBuffer&) = default;
  SecretBuffer& operator=(const SecretBuffer& other) {
    if (this != &other) { clear(); bytes_ = other.bytes_; }
    return *this;
  }
  SecretBuffer(SecretBuffer&& other) noexcept : bytes_(std::move(other.bytes_)) {}
  SecretBuffer& operator=(SecretBuffer&& other) noexcept {
    if (this != &other) { clear(); bytes_ = std::move(other.bytes_); }
    return *this;
  }
  ~SecretBuffer() { clear(); }

  std::uint8_t* data() { return bytes_.data(); }
  const std::uint8_t* data() const { return bytes_.data(); }
  std::size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  std::span<std::uint8_t> span() { return bytes_; }
  std::span<const std::uint8_t> span() const { return bytes_; }

  void clear() {
    wipe(bytes_.data(), bytes_.size());
    bytes_.clear();
  }

 private:
  std::vector<std::uint8_t> bytes_;
};

}  // namespace shoal::crypto
