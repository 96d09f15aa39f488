#include "shoal/crypto/hash.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "sodium_init.h"

namespace shoal::crypto {

Blake2b256::Blake2b256() {
  detail::ensure_sodium();
  crypto_generichash_init(&state_, nullptr, 0, kBlake2b256Bytes);
}

Blake2b256::Blake2b256(std::span<const std::uint8_t> key) {
  detail::ensure_sodium();
  if (key.size() < crypto_generichash_KEYBYTES_MIN || key.size() > crypto_generichash_KEYBYTES_MAX) {
    throw std::invalid_argument("Blake2b256: key must be 16 to 64 bytes");
  }
  crypto_generichash_init(&state_, key.data(), key.size(), kBlake2b256Bytes);
}

Blake2b256::~Blake2b256() { wipe(&state_, sizeof state_); }

Blake2b256& Blake2b256::update(std::span<const std::uint8_t> bytes) {
  if (finished_) throw std::logic_error("Blake2b256::update after finish");
  crypto_generichash_update(&state_, bytes.data(), bytes.size());
  return *this;
}

Blake2b256& Blake2b256::update(std::string_view text) {
  return update(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

Blake2b256Digest Blake2b256::finish() {
  if (finished_) throw std::logic_error("Blake2b256::finish called twice");
  finished_ = true;
  Blake2b256Digest digest{};
  crypto_generichash_final(&state_, digest.data(), digest.size());
  return digest;
}

Blake2b256Digest blake2b256(std::span<const std::uint8_t> bytes) {
  return Blake2b256().update(bytes).finish();
}

Sha256Digest sha256(std::span<const std::uint8_t> bytes) {
  detail::ensure_sodium();
  Sha256Digest digest{};
  crypto_hash_sha256(digest.data(), bytes.data(), bytes.size());
  return digest;
}

Sha256Digest sha256(std::string_view text) {
  return sha256(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

Result<Blake2b256Digest> hash_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_error(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io,
                      "cannot open '" + path.string() + "' to hash it: " + std::strerror(errno));
  }
  Blake2b256 hasher;
  std::vector<std::uint8_t> chunk(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      Error error = make_error(ErrorCode::io, "cannot read '" + path.string() + "' to hash it: " +
                                                   std::strerror(errno));
      ::close(fd);
      return error;
    }
    if (n == 0) break;
    hasher.update(std::span(chunk.data(), static_cast<std::size_t>(n)));
  }
  ::close(fd);
  return hasher.finish();
}

}  // namespace shoal::crypto
