// Keys of other TUF tools: root metadata made by python-tuf's
// securesystemslib with an ECDSA P-256 and an RSA-PSS key
// (fixtures/make_foreign_keys_root.py), read and verified with OpenSSL,
// and the specification's rules on signatures and thresholds.
#include <catch2/catch.hpp>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/updater/tuf_metadata.h"

using namespace shoal;
using namespace shoal::updater;

namespace {

std::vector<std::uint8_t> fixture_bytes() {
  auto text = base::read_file(std::string(SHOAL_UPDATER_FIXTURES) + "/foreign_keys.root.json", 1 << 20);
  REQUIRE(text.ok());
  return std::vector<std::uint8_t>(text->begin(), text->end());
}

struct ForeignRoot {
  SignedMetadata file;
  RootMetadata root;
};

ForeignRoot parse(const std::vector<std::uint8_t>& bytes) {
  auto file = parse_metadata_file(bytes, "foreign_keys.root.json");
  REQUIRE(file.ok());
  auto root = parse_root(file->signed_part, "foreign_keys.root.json");
  REQUIRE(root.ok());
  return {std::move(file).value(), std::move(root).value()};
}

std::vector<std::uint8_t> bytes_of(const nlohmann::json& document) {
  const std::string text = document.dump();
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

}  // namespace

TEST_CASE("root metadata signed with ECDSA P-256 and RSA-PSS keys by securesystemslib verifies") {
  const auto parsed = parse(fixture_bytes());
  std::map<KeyScheme, int> schemes;
  for (const auto& [id, key] : parsed.root.keys) ++schemes[key.scheme];
  CHECK(schemes[KeyScheme::ecdsa_p256_sha256] == 1);
  CHECK(schemes[KeyScheme::rsa_pss_sha256] == 1);
  CHECK(schemes[KeyScheme::ed25519] == 1);
  CHECK(count_valid_signatures(parsed.file, parsed.root, RoleName::root) == 2);
  CHECK(verify_threshold(parsed.file, parsed.root, RoleName::root, "root").ok());
  // Written back, the keys are as stored, so their ids still hold.
  CHECK(to_json(parsed.root)["keys"] == parsed.file.signed_part["keys"]);
}

TEST_CASE("a changed signed part, a dropped or damaged signature fail the ECDSA and RSA threshold") {
  const auto bytes = fixture_bytes();
  auto document = nlohmann::json::parse(bytes.begin(), bytes.end());

  auto changed = document;
  changed["signed"]["expires"] = "2098-01-01T00:00:00Z";
  auto tampered = parse(bytes_of(changed));
  CHECK(count_valid_signatures(tampered.file, tampered.root, RoleName::root) == 0);

  auto dropped = document;
  dropped["signatures"].erase(1);
  auto one = parse(bytes_of(dropped));
  CHECK(count_valid_signatures(one.file, one.root, RoleName::root) == 1);
  const auto refused = verify_threshold(one.file, one.root, RoleName::root, "root");
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("1 valid signature(s) from root keys"));

  // A flipped byte, a signature cut short, one that is not hex: each simply does not count.
  for (int damage = 0; damage < 3; ++damage) {
    auto damaged = document;
    for (auto& signature : damaged["signatures"]) {
      std::string sig = signature["sig"];
      if (damage == 0) sig[10] = sig[10] == '0' ? '1' : '0';
      if (damage == 1) sig = sig.substr(0, sig.size() - 2);
      if (damage == 2) sig = "not hex";
      signature["sig"] = sig;
    }
    auto read = parse(bytes_of(damaged));
    CHECK(count_valid_signatures(read.file, read.root, RoleName::root) == 0);
  }
}

TEST_CASE("TUF's rules: a threshold no keys can meet fails only its role, a key id signing twice is refused") {
  const auto bytes = fixture_bytes();
  const auto parsed = parse(bytes);
  // Targets names one key and needs two: the root reads, targets metadata never verifies.
  CHECK(parsed.root.roles.at(RoleName::targets).threshold == 2);
  SignedMetadata targets{nlohmann::json{{"_type", "targets"}}, {}};
  const auto unmet = verify_threshold(targets, parsed.root, RoleName::targets, "targets");
  REQUIRE_FALSE(unmet.ok());
  CHECK_THAT(unmet.error().message, Catch::Contains("the threshold is 2"));

  auto document = nlohmann::json::parse(bytes.begin(), bytes.end());
  document["signatures"].push_back(document["signatures"][0]);
  auto twice = parse_metadata_file(bytes_of(document), "root.json");
  REQUIRE_FALSE(twice.ok());
  CHECK_THAT(twice.error().message, Catch::Contains("twice"));
  // A key id is a stranger's text until its signature checks: it reaches the message escaped.
  auto forged = nlohmann::json::parse(bytes.begin(), bytes.end());
  forged["signatures"] = {{{"keyid", "ab\n\x1b[31mforged"}, {"sig", "00"}}, {{"keyid", "ab\n\x1b[31mforged"}, {"sig", "00"}}};
  auto escaped = parse_metadata_file(bytes_of(forged), "root.json");
  REQUIRE_FALSE(escaped.ok());
  CHECK_THAT(escaped.error().message, Catch::Contains("ab\\x0a\\x1b[31mforged"));
  CHECK(escaped.error().message.find('\n') == std::string::npos);

  // Unknown key types are named, not guessed at.
  auto dsa = document["signed"];
  dsa["keys"].begin().value()["scheme"] = "dsa-sha1";
  auto unsupported = parse_root(dsa, "root.json");
  REQUIRE_FALSE(unsupported.ok());
  CHECK(unsupported.error().code == ErrorCode::unsupported);
  CHECK_THAT(unsupported.error().message, Catch::Contains("dsa-sha1"));

  // A PEM that is not a key, and an ECDSA key on another curve's name, are refused on reading.
  auto not_pem = document["signed"];
  for (auto& [id, key] : not_pem["keys"].items()) {
    if (key["keytype"] == "rsa") key["keyval"]["public"] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  }
  auto bad_pem = parse_root(not_pem, "root.json");
  REQUIRE_FALSE(bad_pem.ok());
  CHECK_THAT(bad_pem.error().message, Catch::Contains("not a PEM public key"));
}
