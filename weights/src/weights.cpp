#include "shoal/weights/weights.h"

namespace shoal::weights {

Weights::Weights(Layout layout, std::uint64_t version)
    : layout_(std::move(layout)), version_(version), values_(layout_.value_count(), 0.0f) {}

Result<Weights> Weights::from_values(Layout layout, std::uint64_t version, std::vector<float> values) {
  if (values.size() != layout.value_count()) {
    return make_error(ErrorCode::invalid_argument,
                      std::to_string(values.size()) + " values given for layout " + layout.short_hash() +
                          ", which has " + std::to_string(layout.value_count()) + " values");
  }
  return Weights(std::move(layout), version, std::move(values));
}

std::span<const float> Weights::tensor(std::size_t index) const {
  return std::span<const float>(values_).subspan(layout_.offset(index), layout_.tensors().at(index).element_count());
}

}  // namespace shoal::weights
