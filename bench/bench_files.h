// What the process benchmarks share: failing with the benchmark's name, and
// writing the files of a set-up.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "shoal/base/durable_file.h"

namespace shoal::bench {

// Prints "<program>: <why>" and exits 1.
[[noreturn]] inline void fail(const char* program, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", program, why.c_str());
  std::exit(1);
}

// Writes `text` to `path` durably, or fails naming the file.
inline void write_text(const char* program, const std::filesystem::path& path, const std::string& text) {
  if (!base::write_file_durably(path, text)) fail(program, "cannot write " + path.string());
}

}  // namespace shoal::bench
