// Files the end-to-end tests set up before they start processes: text
// files and identity key pairs (the secret file and its .pub beside it).
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/key_file.h"

namespace shoal::testing {

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  REQUIRE(base::write_file_durably(path, text));
}

inline crypto::IdentityKeyPair make_key(const std::filesystem::path& path, crypto::KeyRole role) {
  auto keys = crypto::IdentityKeyPair::generate();
  REQUIRE(crypto::save_identity_key(path, {role, keys}));
  REQUIRE(crypto::save_public_key(std::filesystem::path(path).replace_extension(".pub"), {role, keys.public_identity()}));
  return keys;
}

}  // namespace shoal::testing
