#include "shoal/protocol/enrolment.h"

#include <sys/stat.h>

#include <algorithm>
#include <vector>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"

namespace shoal::protocol {
namespace {

constexpr std::size_t kMaxListBytes = std::size_t{64} << 20;

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

std::vector<std::filesystem::path> public_key_files(const std::filesystem::path& directory,
                                                    std::error_code& error) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    if (entry.path().extension() == ".pub") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

Status EnrolmentList::add(EnrolledDevice device, const std::string& where) {
  const auto key = device.identity.curve25519();
  if (devices_.contains(key)) {
    return make_error(ErrorCode::corrupt, where + ": key " + device.identity.key_id() + " is enrolled twice");
  }
  devices_.emplace(key, std::move(device));
  return ok_status();
}

Result<EnrolmentList> EnrolmentList::parse(std::string_view text, std::string_view source) {
  EnrolmentList list;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const auto end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = "enrolment list '" + std::string(source) + "' line " + std::to_string(line_number);
    const auto space = line.find_first_of(" \t");
    const std::string_view key_text = line.substr(0, space);
    std::string_view rest = space == std::string_view::npos ? std::string_view{} : trim(line.substr(space));
    auto identity = crypto::parse_ed25519_public(key_text, where);
    if (!identity) return identity.error();
    EnrolledDevice device{*identity, {}, {}};
    while (!rest.empty()) {  // words: group=NAME, the others the device's name
      const auto word_end = std::min(rest.find_first_of(" \t"), rest.size());
      const std::string_view word = rest.substr(0, word_end);
      rest = trim(rest.substr(word_end));
      if (word.starts_with("group=")) {
        const std::string_view group = word.substr(6);
        const bool valid = !group.empty() && group.size() <= 64 && std::all_of(group.begin(), group.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        });
        if (!valid) {
          return make_error(ErrorCode::corrupt, where + ": group '" + crypto::printable_text(group) +
                                                    "' must be 1 to 64 of a-z, 0-9, '-' and '_'");
        }
        device.groups.emplace_back(group);
      } else {
        if (!device.name.empty()) device.name += ' ';
        device.name += word;
      }
    }
    if (auto status = list.add(std::move(device), where); !status) return status.error();
  }
  return list;
}

Result<EnrolmentList> EnrolmentList::load(const std::filesystem::path& source) {
  std::error_code error;
  if (!std::filesystem::is_directory(source, error)) {
    auto text = base::read_file(source, kMaxListBytes);
    if (!text) return make_error(text.error().code, "enrolment list: " + text.error().message);
    return parse(*text, source.string());
  }
  const auto files = public_key_files(source, error);
  if (error) {
    return make_error(ErrorCode::io, "cannot list enrolment directory '" + source.string() + "': " + error.message());
  }
  EnrolmentList list;
  for (const auto& file : files) {
    auto key = crypto::load_public_key(file, crypto::KeyRole::device);
    if (!key) return make_error(key.error().code, "enrolment directory: " + key.error().message);
    if (auto status = list.add({key->identity, file.stem().string(), {}}, "'" + file.string() + "'"); !status) {
      return status.error();
    }
  }
  return list;
}

std::vector<crypto::PublicIdentity> EnrolmentList::members(std::string_view group) const {
  std::vector<crypto::PublicIdentity> out;
  for (const auto& [key, device] : devices_) {
    if (std::find(device.groups.begin(), device.groups.end(), group) != device.groups.end()) {
      out.push_back(device.identity);
    }
  }
  return out;
}

const EnrolledDevice* EnrolmentList::find(const crypto::Curve25519PublicKey& key) const {
  auto it = devices_.find(key);
  return it == devices_.end() ? nullptr : &it->second;
}

std::string enrolment_source_fingerprint(const std::filesystem::path& source) {
  auto describe = [](const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return path.string() + ":missing;";
    return path.string() + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
  };
  std::string fingerprint = describe(source);
  std::error_code error;
  if (std::filesystem::is_directory(source, error)) {
    for (const auto& file : public_key_files(source, error)) fingerprint += describe(file);
  }
  return fingerprint;
}

}  // namespace shoal::protocol

namespace shoal::protocol {
namespace {

bool is_enrolment_directory(const std::filesystem::path& path) {
  std::error_code ignored;
  return std::filesystem::is_directory(path, ignored);
}

// The list file's text, empty when the file does not exist yet.
Result<std::string> list_text(const std::filesystem::path& source) {
  std::error_code ignored;
  if (!std::filesystem::exists(source, ignored)) return std::string();
  auto text = base::read_file(source, kMaxListBytes);
  if (!text) return make_error(text.error().code, "enrolment list: " + text.error().message);
  return text;
}

Error not_enrolled(const std::filesystem::path& source, const crypto::PublicIdentity& device) {
  return make_error(ErrorCode::not_found, crypto::format_ed25519_public(device.ed25519()) + " is not enrolled in " +
                                              source.string());
}

}  // namespace

Status enroll_device(const std::filesystem::path& source, const crypto::PublicIdentity& device, std::string_view name,
                     base::Env& env) {
  if (name.find_first_of(" \t\n/") != std::string_view::npos) {
    return make_error(ErrorCode::invalid_argument, "device name '" + std::string(name) + "' has a space or a slash");
  }
  const std::string key_text = crypto::format_ed25519_public(device.ed25519());
  auto current = is_enrolment_directory(source) ? EnrolmentList::load(source) : [&]() -> Result<EnrolmentList> {
    auto text = list_text(source);
    if (!text) return text.error();
    return EnrolmentList::parse(*text, source.string());
  }();
  if (!current) return current.error();
  if (current->find(device.curve25519())) {
    return make_error(ErrorCode::invalid_argument, key_text + " is already enrolled in " + source.string());
  }
  if (is_enrolment_directory(source)) {
    const std::string stem = name.empty() ? device.key_id() : std::string(name);
    return crypto::save_public_key(source / (stem + ".pub"), {crypto::KeyRole::device, device}, env);
  }
  auto text = list_text(source);
  if (!text) return text.error();
  if (!text->empty() && text->back() != '\n') text->push_back('\n');
  *text += key_text + (name.empty() ? "" : " " + std::string(name)) + "\n";
  return base::write_file_durably(source, *text, 0644, env);
}

Status revoke_device(const std::filesystem::path& source, const crypto::PublicIdentity& device, base::Env& env) {
  if (is_enrolment_directory(source)) {
    std::error_code error;
    bool removed = false;
    for (const auto& file : public_key_files(source, error)) {
      auto key = crypto::load_public_key(file);
      if (!key || !(key->identity == device)) continue;
      if (auto status = env.remove_file(file); !status) return status;
      removed = true;
    }
    if (error) return make_error(ErrorCode::io, "cannot update enrolment directory " + source.string() + ": " + error.message());
    if (!removed) return not_enrolled(source, device);
    return env.sync_directory(source);  // a revocation must survive a power cut
  }
  auto text = list_text(source);
  if (!text) return text.error();
  std::string kept;
  bool removed = false;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    const auto trimmed = trim(line);
    const auto key = crypto::parse_ed25519_public(trimmed.substr(0, trimmed.find_first_of(" \t")), "");
    if (!trimmed.empty() && trimmed.front() != '#' && key && *key == device) {
      removed = true;
      continue;
    }
    kept.append(line);
    kept.push_back('\n');
  }
  if (!removed) return not_enrolled(source, device);
  return base::write_file_durably(source, kept, 0644, env);
}

}  // namespace shoal::protocol
