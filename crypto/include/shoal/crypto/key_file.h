// Key files: how identity keys are stored on disk and handed between people.
//
// A secret key file holds the seed and is written with mode 0600; loading one
// that the group or others can read is refused, as ssh does. A public key file
// holds only the public key and can be shared freely (enrolment lists, pinned
// server keys, release root keys). Both are short text files:
//
//   # shoal identity key: keep secret          # shoal public key
//   format shoal-identity-secret/1              format shoal-identity-public/1
//   role device                                 role device
//   public ed25519:<64 hex digits>              public ed25519:<64 hex digits>
//   seed <64 hex digits>
//
// Parse errors name the file (or source) and the line.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "shoal/base/env.h"
#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"

namespace shoal::crypto {

// What a key is for; recorded in the file so a device key is not mistaken
// for a release key.
enum class KeyRole { device, server, release };

const char* to_string(KeyRole role);
Result<KeyRole> parse_key_role(std::string_view text);

struct IdentityKeyFile {
  KeyRole role;
  IdentityKeyPair keys;
};

struct PublicKeyFile {
  KeyRole role;
  PublicIdentity identity;
};

// Writes the secret key file at `path` (mode 0600) atomically.
Status save_identity_key(const std::filesystem::path& path, const IdentityKeyFile& key,
                         base::Env& env = base::Env::standard());
// Writes the public key file at `path` (mode 0644) atomically.
Status save_public_key(const std::filesystem::path& path, const PublicKeyFile& key,
                       base::Env& env = base::Env::standard());

// Loads a secret key file; refuses one readable by group or others.
Result<IdentityKeyFile> load_identity_key(const std::filesystem::path& path);
// Loads a public key file. A secret key file is refused here: public and
// secret files must not be confused.
Result<PublicKeyFile> load_public_key(const std::filesystem::path& path);

// The same, refusing a key of any other role ("server.key: a device key,
// not a server key"), so a device key cannot stand in for a server's.
Result<IdentityKeyFile> load_identity_key(const std::filesystem::path& path, KeyRole expected);
Result<PublicKeyFile> load_public_key(const std::filesystem::path& path, KeyRole expected);

// Parsers behind the loaders; `source` names the text in error messages.
Result<IdentityKeyFile> parse_identity_key(std::string_view text, std::string_view source);
Result<PublicKeyFile> parse_public_key(std::string_view text, std::string_view source);

std::string format_identity_key(const IdentityKeyFile& key);
std::string format_public_key(const PublicKeyFile& key);

// "ed25519:<hex>" — the textual form of a public key in key files and enrolment lists.
std::string format_ed25519_public(const Ed25519PublicKey& key);
Result<PublicIdentity> parse_ed25519_public(std::string_view text, std::string_view where);

}  // namespace shoal::crypto
