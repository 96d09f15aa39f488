// FedBN on the device (Li et al. 2021): the tensors a federation keeps on
// each device, named by index in every train task (TrainTask::local_tensors).
// The device trains and evaluates with its own values of them, keeps what
// training made of them, and sends zeros in their place (DeviceSession does
// that), so they never leave it. Before its first round with them a device
// starts from the global model's values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/inference/model.h"
#include "shoal/weights/weights.h"

namespace shoal::client {

struct LocalValues {
  std::vector<std::uint64_t> tensors;  // layout indices, ascending
  std::vector<float> values;           // theirs, concatenated in that order

  bool empty() const { return tensors.empty(); }
};

// Writes `local`'s values over its tensors in `weights`; does nothing when
// `local` is empty or holds another set of tensors than `tensors`.
void overlay_local(const LocalValues& local, std::span<const std::uint64_t> tensors, weights::Weights& weights);
// Loads `global` into `model`, with `local`'s values over `tensors` when it
// holds them (a copy of `global` is made only then).
Status load_personalised(inference::Model& model, const weights::Weights& global, const LocalValues& local,
                         std::span<const std::uint64_t> tensors);
// The values of `tensors` in `trained`: what the device keeps.
LocalValues take_local(std::span<const std::uint64_t> tensors, const weights::Weights& trained);
// Zeroes the values of `tensors` in `update` (laid out as `layout`).
void zero_local(const weights::Layout& layout, std::span<const std::uint64_t> tensors, std::span<float> update);

// Kept as a weights file of the local tensors alone (atomically written);
// reading maps its tensors back into `layout` by name, shape and dtype, and
// an absent file is an empty LocalValues.
Status write_local_values(const std::filesystem::path& path, const weights::Layout& layout, const LocalValues& local);
Result<LocalValues> read_local_values(const std::filesystem::path& path, const weights::Layout& layout);

}  // namespace shoal::client
