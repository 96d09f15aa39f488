// Internal: every entry point that calls libsodium calls this first.
#pragma once

namespace shoal::crypto::detail {

// Runs sodium_init() once per process; throws std::runtime_error if libsodium
// cannot initialise (no usable random source), which no caller can recover from.
void ensure_sodium();

}  // namespace shoal::crypto::detail
