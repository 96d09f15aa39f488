// The enrolment list: the device public keys a server admits.
//
// Its source is either a file with one key per line
//
//   # comment
//   ed25519:<64 hex digits>  optional-name  group=canary group=eu
//
// where each group=NAME word puts the device in a named group (for staged
// rollouts; names are a-z, 0-9, '-' and '_');
// or a directory in which every *.pub file is a shoal public key file (role
// device). The ZAP authenticator matches a connecting peer's CurveZMQ key
// against the Curve25519 form of each enrolled key.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/env.h"
#include "shoal/base/result.h"
#include "shoal/crypto/identity.h"

namespace shoal::protocol {

struct EnrolledDevice {
  crypto::PublicIdentity identity;
  std::string name;  // from the list line or the file name; may be empty
  std::vector<std::string> groups;  // from group=NAME words of the list line
};

class EnrolmentList {
 public:
  // Loads a list file or a directory of .pub files; errors name the file and line.
  static Result<EnrolmentList> load(const std::filesystem::path& source);
  // Parses list-file text; `source` names it in errors.
  static Result<EnrolmentList> parse(std::string_view text, std::string_view source);

  // The device whose CurveZMQ public key is `key`, or nullptr.
  const EnrolledDevice* find(const crypto::Curve25519PublicKey& key) const;
  std::size_t size() const { return devices_.size(); }
  // The devices in `group`, in key order.
  std::vector<crypto::PublicIdentity> members(std::string_view group) const;

 private:
  Status add(EnrolledDevice device, const std::string& where);
  std::map<crypto::Curve25519PublicKey, EnrolledDevice> devices_;
};

// Enrols `device` in the list file or directory at `source`: a list file
// gets a line (and is created if absent), a directory gets <name>.pub. The
// file is replaced atomically, so a running authenticator reloads either the
// old list or the new one. A key already enrolled is an error.
Status enroll_device(const std::filesystem::path& source, const crypto::PublicIdentity& device, std::string_view name,
                     base::Env& env = base::Env::standard());
// Removes every entry for `device`; not_found if it was not enrolled.
Status revoke_device(const std::filesystem::path& source, const crypto::PublicIdentity& device,
                     base::Env& env = base::Env::standard());

// A value that changes whenever the source's contents may have changed
// (modification times and sizes of the file, or of the directory and its
// entries). The authenticator reloads the list when it differs.
std::string enrolment_source_fingerprint(const std::filesystem::path& source);

}  // namespace shoal::protocol
