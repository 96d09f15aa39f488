#include "shoal/config/config_file.h"

#include <toml++/toml.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace shoal::config {

struct ConfigFile::Table {
  toml::table root;
};

namespace {

// Every leaf key of `table` as "section.key", in document order of sections.
void collect_keys(const toml::table& table, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& [name, node] : table) {
    const std::string key = prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
    if (const auto* inner = node.as_table()) {
      collect_keys(*inner, key, out);
    } else {
      out.push_back(key);
    }
  }
}

}  // namespace

Result<ConfigFile> ConfigFile::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::not_found, path.string() + ": cannot open config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

Result<ConfigFile> ConfigFile::parse(std::string_view text, const std::filesystem::path& source) {
  try {
    auto table = std::make_unique<Table>();
    table->root = toml::parse(text, source.string());
    return ConfigFile(std::move(table), source);
  } catch (const toml::parse_error& e) {
    return make_error(ErrorCode::invalid_argument, source.string() + ":" + std::to_string(e.source().begin.line) +
                                                       ": " + std::string(e.description()));
  }
}

ConfigFile::ConfigFile(std::unique_ptr<Table> table, std::filesystem::path source)
    : table_(std::move(table)), source_(std::move(source)) {}
ConfigFile::ConfigFile(ConfigFile&&) noexcept = default;
ConfigFile& ConfigFile::operator=(ConfigFile&&) noexcept = default;
ConfigFile::~ConfigFile() = default;

void ConfigFile::fail(std::string_view key, const std::string& detail) {
  if (!first_error_) {
    first_error_ = make_error(ErrorCode::invalid_argument,
                              source_.string() + ": key '" + std::string(key) + "': " + detail);
  }
}

bool ConfigFile::has(std::string_view key) const { return static_cast<bool>(table_->root.at_path(key)); }

template <typename T>
std::optional<T> ConfigFile::value_of(std::string_view key, const char* expected) {
  read_keys_.emplace(key);
  const auto node = table_->root.at_path(key);
  if (!node) return std::nullopt;
  // value_exact: no silent conversions (a string "3" is not the integer 3).
  if (auto value = node.value_exact<T>()) return value;
  fail(key, std::string("expected ") + expected);
  return std::nullopt;
}

void ConfigFile::read(std::string_view key, std::string& out) {
  if (auto value = value_of<std::string>(key, "a string")) out = *value;
}

void ConfigFile::read(std::string_view key, std::vector<std::string>& out) {
  read_keys_.emplace(key);
  const auto node = table_->root.at_path(key);
  if (!node) return;
  const auto* array = node.as_array();
  std::vector<std::string> strings;
  for (std::size_t i = 0; array != nullptr && i < array->size(); ++i) {
    const auto value = (*array)[i].value_exact<std::string>();
    if (!value) break;
    strings.push_back(*value);
  }
  if (array == nullptr || strings.size() != array->size()) return fail(key, "expected an array of strings");
  out = std::move(strings);
}

void ConfigFile::read(std::string_view key, bool& out) {
  if (auto value = value_of<bool>(key, "true or false")) out = *value;
}

void ConfigFile::read(std::string_view key, double& out) {
  read_keys_.emplace(key);
  const auto node = table_->root.at_path(key);
  if (!node) return;
  if (auto integer = node.value_exact<std::int64_t>()) {
    out = static_cast<double>(*integer);  // "1" is a fine learning rate
  } else if (auto number = node.value_exact<double>(); number && std::isfinite(*number)) {
    out = *number;
  } else {
    fail(key, "expected a finite number");
  }
}

void ConfigFile::read(std::string_view key, float& out) {
  double value = out;
  read(key, value);
  out = static_cast<float>(value);
}

template <typename T>
void ConfigFile::read_integer(std::string_view key, T& out) {
  auto value = value_of<std::int64_t>(key, "an integer");
  if (!value) return;
  if (*value < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
      static_cast<std::uint64_t>(*value) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
    fail(key, std::to_string(*value) + " is out of range" + (*value < 0 ? " (must not be negative)" : ""));
    return;
  }
  out = static_cast<T>(*value);
}

void ConfigFile::read(std::string_view key, int& out) { read_integer(key, out); }
void ConfigFile::read(std::string_view key, unsigned long& out) { read_integer(key, out); }
void ConfigFile::read(std::string_view key, unsigned long long& out) { read_integer(key, out); }

void ConfigFile::read_path(std::string_view key, std::filesystem::path& out) {
  auto value = value_of<std::string>(key, "a path string");
  if (!value) return;
  if (value->empty()) {
    out.clear();
    return;
  }
  std::filesystem::path path(*value);
  out = path.is_absolute() ? path : (source_.parent_path() / path).lexically_normal();
}

void ConfigFile::read_seconds(std::string_view key, std::chrono::milliseconds& out) {
  double seconds = std::chrono::duration<double>(out).count();
  read(key, seconds);
  if (!(seconds > 0 && seconds < 1e9)) {
    fail(key, "must be a positive number of seconds");
    return;
  }
  out = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
}

Status ConfigFile::finish() const {
  if (first_error_) return *first_error_;
  std::vector<std::string> keys;
  collect_keys(table_->root, "", keys);
  for (const auto& key : keys) {
    if (!read_keys_.contains(key)) {
      return make_error(ErrorCode::invalid_argument,
                        source_.string() + ": unknown key '" + key + "' (misspelt, or not a setting of this command)");
    }
  }
  return ok_status();
}

}  // namespace shoal::config
