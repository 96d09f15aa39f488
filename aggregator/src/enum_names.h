// Name tables for the aggregator's enums (strategies, combiners), so each
// name is written once and a config error can list the accepted names.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <utility>

#include "shoal/base/result.h"

namespace shoal::aggregator::detail {

template <typename E, std::size_t N>
using NameTable = std::array<std::pair<E, std::string_view>, N>;

template <typename E, std::size_t N>
std::string_view name_of(const NameTable<E, N>& table, E value) {
  for (const auto& [entry, name] : table) {
    if (entry == value) return name;
  }
  return "unknown";
}

// `what` names the kind of thing in the error: "unknown strategy 'x' (known: ...)".
template <typename E, std::size_t N>
Result<E> parse_name(const NameTable<E, N>& table, std::string_view name, std::string_view what) {
  std::string known;
  for (const auto& [entry, entry_name] : table) {
    if (entry_name == name) return entry;
    known += (known.empty() ? "" : ", ") + std::string(entry_name);
  }
  return make_error(ErrorCode::invalid_argument,
                    "unknown " + std::string(what) + " '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace shoal::aggregator::detail
