// ConfigFile: one TOML configuration file, read key by key.
//
// Each read names its key as "section.key" and fills the target only when
// the key is present, so a struct's defaults stay in the struct. The first
// problem (a wrong type, a value out of range) is kept, naming the file and
// the key; finish() returns it, or else names the first key in the file
// that nothing read, so a misspelt key is an error rather than silently
// ignored. Relative paths are taken relative to the file's directory, so a
// config works from any working directory.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"

namespace shoal::config {

class ConfigFile {
 public:
  static Result<ConfigFile> load(const std::filesystem::path& path);
  // `source` names the text in errors and anchors relative paths.
  static Result<ConfigFile> parse(std::string_view text, const std::filesystem::path& source);

  ConfigFile(ConfigFile&&) noexcept;
  ConfigFile& operator=(ConfigFile&&) noexcept;
  ~ConfigFile();

  void read(std::string_view key, std::string& out);
  // An array of strings, e.g. ["bn1.*", "*.running_var"].
  void read(std::string_view key, std::vector<std::string>& out);
  void read(std::string_view key, bool& out);
  void read(std::string_view key, double& out);
  void read(std::string_view key, float& out);
  void read(std::string_view key, int& out);
  // Unsigned counts (std::size_t and std::uint64_t are one of these two).
  void read(std::string_view key, unsigned long& out);
  void read(std::string_view key, unsigned long long& out);
  // A path, made absolute against the file's directory.
  void read_path(std::string_view key, std::filesystem::path& out);
  // A duration given in (possibly fractional) seconds.
  void read_seconds(std::string_view key, std::chrono::milliseconds& out);

  // A named choice (a strategy, a split), turned into `out` by `parse`,
  // whose error lists the valid names.
  template <typename Kind, typename Parse>
  void read_choice(std::string_view key, Kind& out, Parse parse) {
    std::string name;
    read(key, name);
    if (!has(key)) return;
    if (auto kind = parse(name)) {
      out = *kind;
    } else {
      fail(key, kind.error().message);
    }
  }

  // An error for `key` found by the caller (e.g. an unknown strategy name).
  void fail(std::string_view key, const std::string& detail);
  bool has(std::string_view key) const;
  const std::filesystem::path& source() const { return source_; }

  // The first error, or an unknown key; ok when every key was read.
  Status finish() const;

 private:
  struct Table;  // the parsed TOML, kept out of this header
  ConfigFile(std::unique_ptr<Table> table, std::filesystem::path source);
  template <typename T>
  void read_integer(std::string_view key, T& out);
  template <typename T>
  std::optional<T> value_of(std::string_view key, const char* expected);

  std::unique_ptr<Table> table_;
  std::filesystem::path source_;
  std::set<std::string, std::less<>> read_keys_;
  std::optional<Error> first_error_;
};

}  // namespace shoal::config
