#include "shoal/client/local_tensors.h"

#include <algorithm>

#include "shoal/weights/weights_file.h"

namespace shoal::client {

void overlay_local(const LocalValues& local, std::span<const std::uint64_t> tensors, weights::Weights& weights) {
  if (local.empty() || !std::ranges::equal(local.tensors, tensors)) return;
  const auto& layout = weights.layout();
  auto source = local.values.begin();
  for (const auto t : local.tensors) {
    const auto count = static_cast<std::ptrdiff_t>(layout.tensors()[t].element_count());
    std::copy(source, source + count, weights.values().begin() + static_cast<std::ptrdiff_t>(layout.offset(t)));
    source += count;
  }
}

Status load_personalised(inference::Model& model, const weights::Weights& global, const LocalValues& local,
                         std::span<const std::uint64_t> tensors) {
  if (local.empty() || tensors.empty()) return model.set_weights(global);
  auto personal = global;
  overlay_local(local, tensors, personal);
  return model.set_weights(personal);
}

LocalValues take_local(std::span<const std::uint64_t> tensors, const weights::Weights& trained) {
  LocalValues local{{tensors.begin(), tensors.end()}, {}};
  for (const auto t : tensors) {
    const auto values = trained.tensor(t);
    local.values.insert(local.values.end(), values.begin(), values.end());
  }
  return local;
}

void zero_local(const weights::Layout& layout, std::span<const std::uint64_t> tensors, std::span<float> update) {
  for (const auto t : tensors) {
    const auto range = update.subspan(layout.offset(t), layout.tensors()[t].element_count());
    std::fill(range.begin(), range.end(), 0.0f);
  }
}

Status write_local_values(const std::filesystem::path& path, const weights::Layout& layout, const LocalValues& local) {
  std::vector<weights::TensorSpec> specs;
  for (const auto t : local.tensors) {
    auto spec = layout.tensors()[t];
    spec.kind = weights::TensorKind::buffer;  // a file of these alone: any order of kinds is valid
    specs.push_back(std::move(spec));
  }
  auto sub_layout = weights::Layout::create(std::move(specs));
  if (!sub_layout) return sub_layout.error();
  auto kept = weights::Weights::from_values(std::move(sub_layout).value(), 0, local.values);
  if (!kept) return kept.error();
  return weights::write_weights_file(path, *kept);
}

Result<LocalValues> read_local_values(const std::filesystem::path& path, const weights::Layout& layout) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return LocalValues{};
  auto kept = weights::read_weights_file(path);
  if (!kept) return kept.error();
  LocalValues local;
  for (const auto& spec : kept->layout().tensors()) {
    const auto index = layout.find(spec.name);
    if (!index || layout.tensors()[*index].shape != spec.shape || layout.tensors()[*index].dtype != spec.dtype) {
      return make_error(ErrorCode::invalid_argument, path.string() + ": local tensor '" + spec.name +
                                                         "' is not a tensor of this model's layout " + layout.short_hash());
    }
    local.tensors.push_back(*index);
  }
  if (!std::ranges::is_sorted(local.tensors)) {
    return make_error(ErrorCode::corrupt, path.string() + ": local tensors out of layout order");
  }
  local.values.assign(kept->values().begin(), kept->values().end());
  return local;
}

}  // namespace shoal::client
