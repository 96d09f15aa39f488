// shoal-keys: make and inspect identity keys for devices, servers and
// release signers.
//
//   shoal-keys generate --role device --out device.key   # writes device.key (0600) and device.pub
//   shoal-keys show device.key                           # role, key id, public keys
//   shoal-keys public device.key --out device.pub        # re-derive the shareable file
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"

namespace fs = std::filesystem;
using namespace shoal;
using namespace shoal::crypto;

namespace {

fs::path public_path_for(const fs::path& secret_path) {
  fs::path public_path = secret_path;
  return public_path.replace_extension(".pub");
}

int fail(const Error& error) {
  std::cerr << "shoal-keys: " << error.describe() << "\n";
  return 1;
}

int generate(const std::string& role_name, const fs::path& out, bool force) {
  auto role = parse_key_role(role_name);
  if (!role) return fail(role.error());
  const fs::path public_out = public_path_for(out);
  if (public_out == out) {
    return fail(make_error(ErrorCode::invalid_argument,
                           "--out '" + out.string() + "' must not end in .pub: that name is for the public file"));
  }
  for (const auto& path : {out, public_out}) {
    if (!force && fs::exists(path)) {
      return fail(make_error(ErrorCode::invalid_argument,
                             "'" + path.string() + "' exists; refusing to overwrite a key (use --force)"));
    }
  }
  IdentityKeyFile key{*role, IdentityKeyPair::generate()};
  if (auto status = save_identity_key(out, key); !status) return fail(status.error());
  if (auto status = save_public_key(public_out, {*role, key.keys.public_identity()}); !status) {
    return fail(status.error());
  }
  std::cout << "wrote " << to_string(*role) << " key " << key.keys.public_identity().key_id() << ": "
            << out.string() << " (secret, mode 0600) and " << public_out.string() << " (public)\n";
  return 0;
}

// Accepts either kind of key file; shows only public information.
int show(const fs::path& path) {
  auto text = base::read_file(path, 4096);
  if (!text) return fail(text.error());
  const bool secret = text->find("shoal-identity-secret/") != std::string::npos;
  wipe(text->data(), text->size());
  Result<PublicKeyFile> public_file = make_error(ErrorCode::not_found, "");
  if (secret) {
    auto secret_file = load_identity_key(path);
    if (!secret_file) return fail(secret_file.error());
    public_file = PublicKeyFile{secret_file->role, secret_file->keys.public_identity()};
  } else {
    public_file = load_public_key(path);
    if (!public_file) return fail(public_file.error());
  }
  const auto& identity = public_file->identity;
  std::cout << "file:       " << path.string() << (secret ? " (secret)" : " (public)") << "\n"
            << "role:       " << to_string(public_file->role) << "\n"
            << "key id:     " << identity.key_id() << "\n"
            << "public:     " << format_ed25519_public(identity.ed25519()) << "\n"
            << "curve25519: " << to_hex(identity.curve25519()) << "\n";
  return 0;
}

int extract_public(const fs::path& path, const fs::path& out) {
  auto key = load_identity_key(path);
  if (!key) return fail(key.error());
  if (auto status = save_public_key(out, {key->role, key->keys.public_identity()}); !status) {
    return fail(status.error());
  }
  std::cout << "wrote " << out.string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoal-keys: make and inspect shoal identity keys"};
  app.require_subcommand(1);

  std::string role = "device";
  fs::path out;
  bool force = false;
  auto* generate_command = app.add_subcommand("generate", "generate a key pair: secret file and .pub file");
  generate_command->add_option("--role", role, "device, server or release")->capture_default_str();
  generate_command->add_option("--out", out, "secret key file to write; the public one gets .pub")->required();
  generate_command->add_flag("--force", force, "overwrite existing files");

  fs::path show_path;
  auto* show_command = app.add_subcommand("show", "print a key file's role, id and public keys");
  show_command->add_option("file", show_path, "a secret or public key file")->required();

  fs::path secret_path, public_out;
  auto* public_command = app.add_subcommand("public", "write the public key file of a secret key file");
  public_command->add_option("file", secret_path, "secret key file")->required();
  public_command->add_option("--out", public_out, "public key file to write")->required();

  CLI11_PARSE(app, argc, argv);
  if (*generate_command) return generate(role, out, force);
  if (*show_command) return show(show_path);
  return extract_public(secret_path, public_out);
}
