// Canonical JSON: the byte form of release metadata that signatures cover.
//
// The Update Framework signs "canonical JSON" as securesystemslib writes it
// (after OLPC's definition): object keys sorted by their bytes, no
// whitespace, strings escaping only '"' and '\' (other characters, control
// characters included, are written as they are), integers in decimal.
// Floating-point numbers have no canonical form and are refused, so a
// metadata field can never carry one.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "shoal/base/result.h"

namespace shoal::updater {

Result<std::string> canonical_json(const nlohmann::json& value);

}  // namespace shoal::updater
