#include "shoal/weights/integer_buffers.h"

#include <cmath>

namespace shoal::weights {
namespace {

template <typename Function>
void for_integer_values(const Layout& layout, std::span<float> values, Function&& function) {
  for (std::size_t t = 0; t < layout.tensors().size(); ++t) {
    const auto& tensor = layout.tensors()[t];
    if (tensor.dtype != DType::int64) continue;
    for (float& value : values.subspan(layout.offset(t), tensor.element_count())) function(value);
  }
}

}  // namespace

void scale_integer_buffers(const Layout& layout, std::span<float> values, float factor) {
  for_integer_values(layout, values, [factor](float& value) { value *= factor; });
}

void round_integer_buffers(const Layout& layout, std::span<float> values) {
  for_integer_values(layout, values, [](float& value) { value = std::round(value); });
}

}  // namespace shoal::weights
