// Sweeps injected faults over every disk operation of a store's write.
//
// A write is first run under a FaultInjectingEnv that breaks nothing, to
// count its disk operations. Then, for each operation k:
//   - crash_sweep: a fresh state, the write with a crash after k operations,
//     and `check`, which loads the state from disk as a restarted process
//     would and checks that it is the old or the new one;
//   - failure_sweep: a fresh state, the write with operation k failing with
//     ENOSPC, then EIO, and `check`, which also sees whether the write said so.
// `prepare` makes the fresh state; `write` writes through the Env it is given.
#pragma once

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstddef>
#include <string>

#include "shoal/base/fault_injecting_env.h"

namespace shoal::testing {

// The operations a write makes: "create .x.tmp.1.0, append .x.tmp.1.0, ...".
inline std::string operations_of(const base::FaultInjectingEnv& env) {
  std::string text;
  for (const auto& entry : env.log()) text += (text.empty() ? "" : ", ") + entry;
  return text;
}

template <typename Prepare, typename Write>
std::size_t count_operations(Prepare& prepare, Write& write) {
  prepare();
  base::FaultInjectingEnv env;
  REQUIRE(write(env));
  INFO(operations_of(env));
  REQUIRE(env.operations() > 0);
  return env.operations();
}

// check(crash_point, total, write_succeeded)
template <typename Prepare, typename Write, typename Check>
void crash_sweep(Prepare prepare, Write write, Check check) {
  const std::size_t total = count_operations(prepare, write);
  for (std::size_t k = 0; k <= total; ++k) {
    prepare();
    base::FaultInjectingEnv env;
    env.crash_after(k);
    const bool succeeded = static_cast<bool>(write(env));
    INFO("crash after " << k << " of " << total << " operations: " << operations_of(env));
    check(k, total, succeeded);
  }
}

// check(failed_operation, error_number, write_succeeded)
template <typename Prepare, typename Write, typename Check>
void failure_sweep(Prepare prepare, Write write, Check check) {
  const std::size_t total = count_operations(prepare, write);
  for (int error_number : {ENOSPC, EIO}) {
    for (std::size_t k = 0; k < total; ++k) {
      prepare();
      base::FaultInjectingEnv env;
      env.fail_operation(k, error_number);
      const bool succeeded = static_cast<bool>(write(env));
      INFO("operation " << k << " of " << total << " fails with errno " << error_number << ": "
                        << operations_of(env));
      check(k, error_number, succeeded);
    }
  }
}

}  // namespace shoal::testing
