#include "shoal/protocol/enrolment.h"

#include <catch2/catch.hpp>

#include "fault_sweep.h"
#include "shoal/base/durable_file.h"
#include "shoal/crypto/key_file.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::protocol;
using shoal::testing::TempDir;

TEST_CASE("a list file admits exactly its keys, by their Curve25519 form") {
  const auto a = crypto::IdentityKeyPair::generate().public_identity();
  const auto b = crypto::IdentityKeyPair::generate().public_identity();
  const auto stranger = crypto::IdentityKeyPair::generate().public_identity();
  const std::string text = "# fleet\n" + crypto::format_ed25519_public(a.ed25519()) + " laptop-1\n\n" +
                           crypto::format_ed25519_public(b.ed25519()) + "\n";
  auto list = EnrolmentList::parse(text, "devices.txt");
  REQUIRE(list);
  CHECK(list->size() == 2);
  REQUIRE(list->find(a.curve25519()) != nullptr);
  CHECK(list->find(a.curve25519())->name == "laptop-1");
  CHECK(list->find(b.curve25519()) != nullptr);
  CHECK(list->find(stranger.curve25519()) == nullptr);
}

TEST_CASE("group=NAME words put a device in groups, and the other words are its name") {
  const auto a = crypto::IdentityKeyPair::generate().public_identity();
  const auto b = crypto::IdentityKeyPair::generate().public_identity();
  const auto c = crypto::IdentityKeyPair::generate().public_identity();
  const std::string text = crypto::format_ed25519_public(a.ed25519()) + " lab phone group=canary group=eu\n" +
                           crypto::format_ed25519_public(b.ed25519()) + " group=eu\n" +
                           crypto::format_ed25519_public(c.ed25519()) + " laptop\n";
  auto list = EnrolmentList::parse(text, "devices.txt");
  REQUIRE(list);
  CHECK(list->find(a.curve25519())->name == "lab phone");
  CHECK(list->find(a.curve25519())->groups == std::vector<std::string>{"canary", "eu"});
  CHECK(list->find(b.curve25519())->name.empty());
  REQUIRE(list->members("canary").size() == 1);
  CHECK(list->members("canary")[0].ed25519() == a.ed25519());
  CHECK(list->members("eu").size() == 2);
  CHECK(list->members("laptop").empty());
  auto bad = EnrolmentList::parse(crypto::format_ed25519_public(a.ed25519()) + " group=Bad!\n", "devices.txt");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("'devices.txt' line 1: group 'Bad!'") != std::string::npos);
}

TEST_CASE("a bad list line is an error naming the file and the line") {
  const auto a = crypto::IdentityKeyPair::generate().public_identity();
  const std::string good = crypto::format_ed25519_public(a.ed25519());
  auto bad_key = EnrolmentList::parse(good + "\ned25519:zz\n", "devices.txt");
  REQUIRE_FALSE(bad_key);
  CHECK(bad_key.error().message.find("'devices.txt' line 2") != std::string::npos);
  auto twice = EnrolmentList::parse(good + "\n" + good + "\n", "devices.txt");
  REQUIRE_FALSE(twice);
  CHECK(twice.error().message.find("enrolled twice") != std::string::npos);
  auto no_prefix = EnrolmentList::parse("abc\n", "devices.txt");
  REQUIRE_FALSE(no_prefix);
  CHECK(no_prefix.error().message.find("ed25519:") != std::string::npos);
}

TEST_CASE("a directory of .pub files is an enrolment list, named by file") {
  TempDir dir;
  const auto a = crypto::IdentityKeyPair::generate().public_identity();
  REQUIRE(crypto::save_public_key(dir / "phone-7.pub", {crypto::KeyRole::device, a}));
  REQUIRE(base::write_file_durably(dir / "README", std::string_view("not a key")));
  auto list = EnrolmentList::load(dir.path());
  REQUIRE(list);
  CHECK(list->size() == 1);
  CHECK(list->find(a.curve25519())->name == "phone-7");
}

TEST_CASE("a release or server key in the enrolment directory is refused") {
  TempDir dir;
  const auto key = crypto::IdentityKeyPair::generate().public_identity();
  REQUIRE(crypto::save_public_key(dir / "signer.pub", {crypto::KeyRole::release, key}));
  auto list = EnrolmentList::load(dir.path());
  REQUIRE_FALSE(list);
  CHECK(list.error().message.find("release key, not a device key") != std::string::npos);
}

TEST_CASE("a missing enrolment source is an error naming it") {
  TempDir dir;
  auto list = EnrolmentList::load(dir / "devices.txt");
  REQUIRE_FALSE(list);
  CHECK(list.error().code == ErrorCode::not_found);
  CHECK(list.error().message.find("devices.txt") != std::string::npos);
}

TEST_CASE("the source fingerprint changes when a key file is added") {
  TempDir dir;
  const auto before = enrolment_source_fingerprint(dir.path());
  REQUIRE(crypto::save_public_key(dir / "d.pub", {crypto::KeyRole::device,
                                                  crypto::IdentityKeyPair::generate().public_identity()}));
  CHECK(enrolment_source_fingerprint(dir.path()) != before);
}

TEST_CASE("enroll and revoke edit a list file, keeping comments and other devices") {
  TempDir dir;
  const auto list_path = dir.path() / "enrolled.txt";
  const auto a = crypto::IdentityKeyPair::generate().public_identity();
  const auto b = crypto::IdentityKeyPair::generate().public_identity();
  REQUIRE(base::write_file_durably(list_path, std::string_view("# the fleet\n")));
  REQUIRE(enroll_device(list_path, a, "laptop-1"));
  REQUIRE(enroll_device(list_path, b, ""));
  auto twice = enroll_device(list_path, a, "again");
  REQUIRE_FALSE(twice);
  CHECK(twice.error().message.find("is already enrolled in") != std::string::npos);
  auto list = EnrolmentList::load(list_path);
  REQUIRE(list);
  CHECK(list->size() == 2);
  CHECK(list->find(a.curve25519())->name == "laptop-1");

  REQUIRE(revoke_device(list_path, a));
  list = EnrolmentList::load(list_path);
  REQUIRE(list);
  CHECK(list->size() == 1);
  CHECK(list->find(a.curve25519()) == nullptr);
  CHECK(list->find(b.curve25519()) != nullptr);
  CHECK(base::read_file(list_path, 1 << 20)->rfind("# the fleet\n", 0) == 0);
  auto gone = revoke_device(list_path, a);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code == ErrorCode::not_found);
}

TEST_CASE("enroll and revoke in an enrolment directory add and remove .pub files") {
  TempDir dir;
  const auto a = crypto::IdentityKeyPair::generate().public_identity();
  REQUIRE(enroll_device(dir.path(), a, "phone-7"));
  CHECK(std::filesystem::exists(dir.path() / "phone-7.pub"));
  auto list = EnrolmentList::load(dir.path());
  REQUIRE(list);
  CHECK(list->find(a.curve25519()) != nullptr);
  REQUIRE(revoke_device(dir.path(), a));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "phone-7.pub"));
}

namespace {

// The devices a restarted aggregator admits from `source`.
std::vector<bool> admitted(const std::filesystem::path& source, const std::vector<crypto::PublicIdentity>& devices) {
  auto list = EnrolmentList::load(source);
  REQUIRE(list);
  std::vector<bool> in;
  for (const auto& device : devices) in.push_back(list->find(device.curve25519()) != nullptr);
  return in;
}

}  // namespace

TEST_CASE("a crash or a failed disk operation in an enrolment edit leaves the list before or after it, whole") {
  TempDir dir;
  const auto a = crypto::IdentityKeyPair::generate().public_identity();
  const auto b = crypto::IdentityKeyPair::generate().public_identity();
  const auto c = crypto::IdentityKeyPair::generate().public_identity();
  const bool directory = GENERATE(false, true);
  const auto source = directory ? dir / "enrolled" : dir / "enrolled.txt";
  INFO((directory ? "an enrolment directory" : "a list file"));
  auto prepare = [&] {
    std::filesystem::remove_all(source);
    if (directory) std::filesystem::create_directory(source);
    REQUIRE(enroll_device(source, a, "a"));
    REQUIRE(enroll_device(source, b, "b"));
  };
  // Revoking a, then enrolling c: before, between and after, b stays admitted.
  auto edit = [&](base::Env& env) -> Status {
    if (auto status = revoke_device(source, a, env); !status) return status;
    return enroll_device(source, c, "c", env);
  };
  auto check = [&](bool succeeded) {
    const auto in = admitted(source, {a, b, c});
    CHECK(in[1]);
    CHECK((in == std::vector<bool>{true, true, false} || in == std::vector<bool>{false, true, false} ||
           in == std::vector<bool>{false, true, true}));
    if (succeeded) CHECK(in == std::vector<bool>{false, true, true});
  };
  shoal::testing::crash_sweep(prepare, edit, [&](std::size_t, std::size_t, bool succeeded) { check(succeeded); });
  shoal::testing::failure_sweep(prepare, edit, [&](std::size_t, int, bool succeeded) { check(succeeded); });
}
