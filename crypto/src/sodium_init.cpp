#include "sodium_init.h"

#include <sodium.h>

#include <stdexcept>

namespace shoal::crypto::detail {

void ensure_sodium() {
  static const bool initialised = sodium_init() >= 0;
  if (!initialised) throw std::runtime_error("libsodium failed to initialise");
}

}  // namespace shoal::crypto::detail
