#include "shoal/crypto/key_file.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <fstream>

#include "fault_sweep.h"
#include "shoal/base/durable_file.h"
#include "temp_dir.h"

using namespace shoal::crypto;
using shoal::ErrorCode;
using shoal::testing::TempDir;

namespace {

mode_t mode_of(const std::filesystem::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

void write_text(const std::filesystem::path& path, const std::string& text, mode_t mode) {
  REQUIRE(shoal::base::write_file_durably(path, text, mode));
}

}  // namespace

TEST_CASE("a saved identity key loads back with the same keys and role") {
  TempDir dir;
  IdentityKeyFile key{KeyRole::server, IdentityKeyPair::generate()};
  REQUIRE(save_identity_key(dir / "server.key", key));
  auto loaded = load_identity_key(dir / "server.key");
  REQUIRE(loaded);
  CHECK(loaded->role == KeyRole::server);
  CHECK(loaded->keys.seed() == key.keys.seed());
  CHECK(loaded->keys.public_identity() == key.keys.public_identity());
}

TEST_CASE("a secret key file is written with mode 0600 whatever the umask") {
  TempDir dir;
  const mode_t previous = ::umask(0);
  const auto status = save_identity_key(dir / "device.key", {KeyRole::device, IdentityKeyPair::generate()});
  ::umask(previous);
  REQUIRE(status);
  CHECK(mode_of(dir / "device.key") == 0600);
}

TEST_CASE("a secret key file readable by group or others is refused with a chmod hint") {
  TempDir dir;
  REQUIRE(save_identity_key(dir / "device.key", {KeyRole::device, IdentityKeyPair::generate()}));
  for (mode_t mode : {0640, 0604, 0644}) {
    REQUIRE(::chmod((dir / "device.key").c_str(), mode) == 0);
    auto loaded = load_identity_key(dir / "device.key");
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().code == ErrorCode::permission);
    CHECK(loaded.error().message.find("chmod 600") != std::string::npos);
  }
}

TEST_CASE("a public key file round-trips and is mode 0644") {
  TempDir dir;
  const auto identity = IdentityKeyPair::generate().public_identity();
  REQUIRE(save_public_key(dir / "device.pub", {KeyRole::device, identity}));
  CHECK(mode_of(dir / "device.pub") == 0644);
  auto loaded = load_public_key(dir / "device.pub");
  REQUIRE(loaded);
  CHECK(loaded->identity == identity);
  CHECK(loaded->role == KeyRole::device);
}

TEST_CASE("public and secret key files are not confused") {
  TempDir dir;
  IdentityKeyFile key{KeyRole::device, IdentityKeyPair::generate()};
  REQUIRE(save_identity_key(dir / "device.key", key));
  REQUIRE(save_public_key(dir / "device.pub", {key.role, key.keys.public_identity()}));
  auto as_public = load_public_key(dir / "device.key");
  REQUIRE_FALSE(as_public);
  CHECK(as_public.error().message.find("this is a secret key file") != std::string::npos);
  REQUIRE(::chmod((dir / "device.pub").c_str(), 0600) == 0);
  auto as_secret = load_identity_key(dir / "device.pub");
  REQUIRE_FALSE(as_secret);
  CHECK(as_secret.error().message.find("not a secret one") != std::string::npos);
}

TEST_CASE("damaged key files give errors naming the file, the line and the fault") {
  const IdentityKeyFile key{KeyRole::device, IdentityKeyPair::generate()};
  const std::string good = format_identity_key(key);
  auto error_for = [](const std::string& text) {
    auto parsed = parse_identity_key(text, "dev.key");
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code == ErrorCode::corrupt);
    return parsed.error().message;
  };
  SECTION("truncated in the middle of the seed") {
    const auto message = error_for(good.substr(0, good.size() - 10));
    CHECK(message.find("dev.key") != std::string::npos);
    CHECK(message.find("line 5") != std::string::npos);
    CHECK(message.find("seed") != std::string::npos);
  }
  SECTION("truncated before the seed line") {
    CHECK(error_for(good.substr(0, good.find("seed"))).find("missing field 'seed'") != std::string::npos);
  }
  SECTION("a field twice") { CHECK(error_for(good + "role device\n").find("appears twice") != std::string::npos); }
  SECTION("an unknown field") { CHECK(error_for(good + "colour blue\n").find("unknown field 'colour'") != std::string::npos); }
  SECTION("a line without a value") { CHECK(error_for(good + "lonely\n").find("line 6") != std::string::npos); }
  SECTION("an unknown role") {
    std::string text = good;
    text.replace(text.find("role device"), 11, "role admin ");
    CHECK(error_for(text).find("role 'admin'") != std::string::npos);
  }
  SECTION("a seed that does not match the public key") {
    const IdentityKeyFile other{KeyRole::device, IdentityKeyPair::generate()};
    std::string text = good;
    const std::string other_text = format_identity_key(other);
    text.replace(text.find("seed "), std::string::npos, other_text.substr(other_text.find("seed ")));
    CHECK(error_for(text).find("does not belong") != std::string::npos);
  }
  SECTION("a foreign file") { CHECK(error_for("hello world\n").find("unknown field 'hello'") != std::string::npos); }
  SECTION("an empty file") { CHECK(error_for("").find("missing field 'format'") != std::string::npos); }
}

TEST_CASE("loading a missing key file says not found and names it") {
  TempDir dir;
  auto loaded = load_identity_key(dir / "nope.key");
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().code == ErrorCode::not_found);
  CHECK(loaded.error().message.find("nope.key") != std::string::npos);
}

TEST_CASE("an oversized file is not read into memory as a key") {
  TempDir dir;
  write_text(dir / "big.pub", std::string(1 << 20, '#'), 0644);
  auto loaded = load_public_key(dir / "big.pub");
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().message.find("limit") != std::string::npos);
}

TEST_CASE("a crash or a failed disk operation while a key file is replaced leaves the old key or the new, 0600") {
  TempDir dir;
  const auto path = dir / "device.key";
  const IdentityKeyFile old_key{KeyRole::device, IdentityKeyPair::generate()};
  const IdentityKeyFile new_key{KeyRole::device, IdentityKeyPair::generate()};
  auto prepare = [&] {
    std::filesystem::remove_all(dir.path());
    std::filesystem::create_directory(dir.path());
    REQUIRE(save_identity_key(path, old_key));
  };
  auto replace = [&](shoal::base::Env& env) { return save_identity_key(path, new_key, env); };
  auto check = [&](bool succeeded) {
    auto loaded = load_identity_key(path, KeyRole::device);
    REQUIRE(loaded);
    const auto identity = loaded->keys.public_identity();
    const bool is_old = identity == old_key.keys.public_identity();
    const bool is_new = identity == new_key.keys.public_identity();
    CHECK((is_old || is_new));
    if (succeeded) CHECK(is_new);
    CHECK(mode_of(path) == 0600);
  };
  shoal::testing::crash_sweep(prepare, replace, [&](std::size_t, std::size_t, bool succeeded) { check(succeeded); });
  shoal::testing::failure_sweep(prepare, replace, [&](std::size_t, int, bool succeeded) { check(succeeded); });
}
