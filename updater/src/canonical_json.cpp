#include "shoal/updater/canonical_json.h"

namespace shoal::updater {
namespace {

void append_string(std::string& out, const std::string& text) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

Status append(std::string& out, const nlohmann::json& value, const std::string& where) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      out += "null";
      return ok_status();
    case nlohmann::json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return ok_status();
    case nlohmann::json::value_t::number_integer:
      out += std::to_string(value.get<std::int64_t>());
      return ok_status();
    case nlohmann::json::value_t::number_unsigned:
      out += std::to_string(value.get<std::uint64_t>());
      return ok_status();
    case nlohmann::json::value_t::string:
      append_string(out, value.get_ref<const std::string&>());
      return ok_status();
    case nlohmann::json::value_t::array: {
      out += '[';
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += ',';
        if (auto status = append(out, value[i], where + "[" + std::to_string(i) + "]"); !status) return status;
      }
      out += ']';
      return ok_status();
    }
    case nlohmann::json::value_t::object: {
      // nlohmann::json keeps object members in a std::map: already sorted by their bytes.
      out += '{';
      bool first = true;
      for (const auto& [key, member] : value.items()) {
        if (!first) out += ',';
        first = false;
        append_string(out, key);
        out += ':';
        if (auto status = append(out, member, where + "." + key); !status) return status;
      }
      out += '}';
      return ok_status();
    }
    default:
      return make_error(ErrorCode::invalid_argument,
                        "canonical JSON: " + where + " is a " + value.type_name() + ", which has no canonical form");
  }
}

}  // namespace

Result<std::string> canonical_json(const nlohmann::json& value) {
  std::string out;
  if (auto status = append(out, value, "$"); !status) return status.error();
  return out;
}

}  // namespace shoal::updater
