#include <charconv>
#include <fstream>

#include "shoal/client/dataset.h"

namespace shoal::client {
namespace {

Error csv_error(const std::filesystem::path& path, std::size_t line, std::size_t column, const std::string& what) {
  return make_error(ErrorCode::corrupt, "CSV file '" + path.string() + "' line " + std::to_string(line) + " column " +
                                            std::to_string(column) + ": " + what);
}

// Splits one line into fields; values are parsed by the caller.
std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    const auto comma = line.find(',', start);
    fields.push_back(line.substr(start, comma - start));
    if (comma == std::string_view::npos) return fields;
    start = comma + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool parse_float(std::string_view text, float& value) {
  text = trim(text);
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  return result.ec == std::errc() && result.ptr == text.data() + text.size() && !text.empty();
}

}  // namespace

Result<Dataset> load_csv(const std::filesystem::path& path) {
  std::ifstream file(path);
  if (!file) {
    return make_error(std::filesystem::exists(path) ? ErrorCode::io : ErrorCode::not_found,
                      "CSV file '" + path.string() + "' cannot be opened");
  }
  Dataset data;
  std::size_t width = 0;
  std::string line;
  for (std::size_t number = 1; std::getline(file, line); ++number) {
    if (trim(line).empty()) continue;
    const auto fields = split(line);
    if (fields.size() < 2) return csv_error(path, number, 1, "need at least one feature and a label");
    float value = 0;
    if (data.labels.empty() && width == 0 && !parse_float(fields[0], value)) continue;  // a header line
    if (width == 0) width = fields.size() - 1;
    if (fields.size() - 1 != width) {
      return csv_error(path, number, fields.size(),
                       std::to_string(fields.size()) + " fields, earlier lines have " + std::to_string(width + 1));
    }
    for (std::size_t i = 0; i < width; ++i) {
      if (!parse_float(fields[i], value)) {
        return csv_error(path, number, i + 1, "'" + std::string(trim(fields[i])) + "' is not a number");
      }
      data.features.push_back(value);
    }
    const auto label_text = trim(fields.back());
    std::int64_t label = -1;
    const auto parsed = std::from_chars(label_text.data(), label_text.data() + label_text.size(), label);
    if (parsed.ec != std::errc() || parsed.ptr != label_text.data() + label_text.size() || label < 0) {
      return csv_error(path, number, fields.size(), "label '" + std::string(label_text) + "' is not a class number");
    }
    data.labels.push_back(label);
  }
  if (data.labels.empty()) return make_error(ErrorCode::corrupt, "CSV file '" + path.string() + "' holds no samples");
  data.sample_shape = {static_cast<std::int64_t>(width)};
  return data;
}

}  // namespace shoal::client
