// Fuzzes the secret and public key file parsers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shoal/crypto/key_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)shoal::crypto::parse_identity_key(text, "fuzz");
  (void)shoal::crypto::parse_public_key(text, "fuzz");
  return 0;
}
