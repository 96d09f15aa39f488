// Fuzzes the delta decoder: each input is applied as a delta to a fixed
// small base with a matrix and a vector, so every transform's reader runs.
#include <cstddef>
#include <cstdint>
#include <span>

#include "shoal/updater/delta_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto base = [] {
    auto layout = *shoal::weights::Layout::create({{"w", {128, 128}}, {"b", {128}}});
    std::vector<float> values(layout.value_count());
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 97) * 1e-3f;
    return *shoal::weights::Weights::from_values(layout, 1, std::move(values));
  }();
  (void)shoal::updater::read_delta_info(std::span(data, size), "fuzz");
  (void)shoal::updater::apply_delta(base, std::span(data, size), "fuzz");
  return 0;
}
