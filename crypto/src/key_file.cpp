#include "shoal/crypto/key_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"

namespace shoal::crypto {
namespace {

constexpr std::string_view kSecretFormat = "shoal-identity-secret/1";
constexpr std::string_view kPublicFormat = "shoal-identity-public/1";
constexpr std::size_t kMaxKeyFileBytes = 4096;

// One "name value" line of a key file, with its line number for errors.
struct Field {
  std::string value;
  int line = 0;
};

Error parse_error(std::string_view source, int line, const std::string& what) {
  return make_error(ErrorCode::corrupt,
                    "key file '" + std::string(source) + "' line " + std::to_string(line) + ": " + what);
}

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

// Splits the text into named fields; refuses unknown and repeated names.
Result<std::map<std::string, Field>> parse_fields(std::string_view text, std::string_view source) {
  constexpr std::string_view allowed[] = {"format", "role", "public", "seed"};
  std::map<std::string, Field> fields;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const auto end = text.find('\n');
    std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    const auto space = line.find_first_of(" \t");
    if (space == std::string_view::npos) {
      return parse_error(source, line_number, "expected 'name value', got '" + std::string(line) + "'");
    }
    const std::string name(line.substr(0, space));
    const std::string_view value = trim(line.substr(space));
    if (std::find(std::begin(allowed), std::end(allowed), name) == std::end(allowed)) {
      return parse_error(source, line_number, "unknown field '" + name + "'");
    }
    if (fields.contains(name)) {
      return parse_error(source, line_number, "field '" + name + "' appears twice");
    }
    fields[name] = Field{std::string(value), line_number};
  }
  return fields;
}

Result<const Field*> require(const std::map<std::string, Field>& fields, std::string_view source,
                             const std::string& name) {
  auto it = fields.find(name);
  if (it == fields.end()) {
    return make_error(ErrorCode::corrupt,
                      "key file '" + std::string(source) + "': missing field '" + name + "'");
  }
  return &it->second;
}

Status check_format(const std::map<std::string, Field>& fields, std::string_view source,
                    std::string_view expected) {
  auto format = require(fields, source, "format");
  if (!format) return format.error();
  if ((*format)->value == expected) return ok_status();
  std::string hint;
  if ((*format)->value == kSecretFormat) hint = " (this is a secret key file; pass its .pub file)";
  if ((*format)->value == kPublicFormat) hint = " (this is a public key file, not a secret one)";
  return parse_error(source, (*format)->line,
                     "format is '" + (*format)->value + "', expected '" + std::string(expected) + "'" + hint);
}

// Parses the fields common to both kinds of file: format, role and public key.
Result<PublicKeyFile> parse_public_part(const std::map<std::string, Field>& fields,
                                        std::string_view source, std::string_view format) {
  if (auto status = check_format(fields, source, format); !status) return status.error();
  auto role_field = require(fields, source, "role");
  if (!role_field) return role_field.error();
  auto role = parse_key_role((*role_field)->value);
  if (!role) return parse_error(source, (*role_field)->line, role.error().message);
  auto public_field = require(fields, source, "public");
  if (!public_field) return public_field.error();
  auto identity = parse_ed25519_public((*public_field)->value, "public key");
  if (!identity) return parse_error(source, (*public_field)->line, identity.error().message);
  return PublicKeyFile{*role, *identity};
}

Status refuse_if_readable_by_others(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return make_error(errno == ENOENT ? ErrorCode::not_found : ErrorCode::io,
                      "cannot stat key file '" + path.string() + "': " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(ErrorCode::permission,
                      "secret key file '" + path.string() + "' has mode " + mode +
                          " and can be read by other users; run: chmod 600 '" + path.string() + "'");
  }
  return ok_status();
}

}  // namespace

const char* to_string(KeyRole role) {
  switch (role) {
    case KeyRole::device: return "device";
    case KeyRole::server: return "server";
    case KeyRole::release: return "release";
  }
  return "unknown";
}

Result<KeyRole> parse_key_role(std::string_view text) {
  for (KeyRole role : {KeyRole::device, KeyRole::server, KeyRole::release}) {
    if (text == to_string(role)) return role;
  }
  return make_error(ErrorCode::invalid_argument,
                    "role '" + std::string(text) + "' is not one of device, server, release");
}

std::string format_ed25519_public(const Ed25519PublicKey& key) { return "ed25519:" + to_hex(key); }

Result<PublicIdentity> parse_ed25519_public(std::string_view text, std::string_view where) {
  constexpr std::string_view kPrefix = "ed25519:";
  if (!text.starts_with(kPrefix)) {
    return make_error(ErrorCode::corrupt, std::string(where) + ": expected 'ed25519:<64 hex digits>'");
  }
  auto bytes = array_from_hex<kEd25519PublicKeyBytes>(text.substr(kPrefix.size()), where);
  if (!bytes) return bytes.error();
  return PublicIdentity::from_ed25519(*bytes);
}

std::string format_public_key(const PublicKeyFile& key) {
  return "# shoal public key: safe to share\n"
         "format " + std::string(kPublicFormat) + "\n" +
         "role " + to_string(key.role) + "\n" +
         "public " + format_ed25519_public(key.identity.ed25519()) + "\n";
}

std::string format_identity_key(const IdentityKeyFile& key) {
  return "# shoal identity key: keep secret\n"
         "format " + std::string(kSecretFormat) + "\n" +
         "role " + to_string(key.role) + "\n" +
         "public " + format_ed25519_public(key.keys.public_identity().ed25519()) + "\n" +
         "seed " + to_hex(key.keys.seed().span()) + "\n";
}

Result<PublicKeyFile> parse_public_key(std::string_view text, std::string_view source) {
  auto fields = parse_fields(text, source);
  if (!fields) return fields.error();
  auto key = parse_public_part(*fields, source, kPublicFormat);
  if (key && fields->contains("seed")) {
    return parse_error(source, fields->at("seed").line, "a public key file must not contain a seed");
  }
  return key;
}

Result<IdentityKeyFile> parse_identity_key(std::string_view text, std::string_view source) {
  auto fields = parse_fields(text, source);
  if (!fields) return fields.error();
  auto public_part = parse_public_part(*fields, source, kSecretFormat);
  if (!public_part) return public_part.error();
  auto seed_field = require(*fields, source, "seed");
  if (!seed_field) return seed_field.error();
  Ed25519Seed seed;
  if (auto status = from_hex((*seed_field)->value, seed.span(), "seed"); !status) {
    return parse_error(source, (*seed_field)->line, status.error().message);
  }
  auto keys = IdentityKeyPair::from_seed(seed);
  // The stored public key is redundant; a mismatch means the file was damaged
  // or hand-edited, and signing with it would produce unverifiable signatures.
  if (!(keys.public_identity() == public_part->identity)) {
    return parse_error(source, (*seed_field)->line,
                       "seed does not belong to the stated public key (file damaged?)");
  }
  return IdentityKeyFile{public_part->role, std::move(keys)};
}

Status save_identity_key(const std::filesystem::path& path, const IdentityKeyFile& key, base::Env& env) {
  std::string text = format_identity_key(key);
  Status status = base::write_file_durably(path, text, 0600, env);
  wipe(text.data(), text.size());
  return status;
}

Status save_public_key(const std::filesystem::path& path, const PublicKeyFile& key, base::Env& env) {
  return base::write_file_durably(path, format_public_key(key), 0644, env);
}

Result<IdentityKeyFile> load_identity_key(const std::filesystem::path& path) {
  if (auto status = refuse_if_readable_by_others(path); !status) return status.error();
  auto text = base::read_file(path, kMaxKeyFileBytes);
  if (!text) return text.error();
  auto parsed = parse_identity_key(*text, path.string());
  wipe(text->data(), text->size());
  return parsed;
}

Result<PublicKeyFile> load_public_key(const std::filesystem::path& path) {
  auto text = base::read_file(path, kMaxKeyFileBytes);
  if (!text) return text.error();
  return parse_public_key(*text, path.string());
}

namespace {

template <typename KeyFile>
Result<KeyFile> of_role(Result<KeyFile> key, const std::filesystem::path& path, KeyRole expected) {
  if (key && key->role != expected) {
    return make_error(ErrorCode::invalid_argument, path.string() + ": a " + to_string(key->role) + " key, not a " +
                                                       to_string(expected) + " key");
  }
  return key;
}

}  // namespace

Result<IdentityKeyFile> load_identity_key(const std::filesystem::path& path, KeyRole expected) {
  return of_role(load_identity_key(path), path, expected);
}

Result<PublicKeyFile> load_public_key(const std::filesystem::path& path, KeyRole expected) {
  return of_role(load_public_key(path), path, expected);
}

}  // namespace shoal::crypto
