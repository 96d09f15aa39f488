// A zoo logreg model loaded for serving, for the serving tests: version
// `version` of the weights initialised from `seed`.
#pragma once

#include <catch2/catch.hpp>

#include "shoal/serving/served_model.h"

namespace shoal::testing {

inline std::shared_ptr<serving::ServedModel> served_logreg(std::uint64_t version, std::uint64_t seed = 1) {
  auto model = inference::Model::from_zoo("logreg", seed);
  REQUIRE(model.ok());
  const auto weights = model->get_weights(version);
  auto served = serving::ServedModel::load(std::move(model).value(), weights, "file");
  REQUIRE(served.ok());
  return *served;
}

}  // namespace shoal::testing
