// Internal: the built-in model zoo as ModelBackends.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/inference/torch_model.h"

namespace shoal::inference::detail {

// The zoo module `name` with parameters initialised from `seed`.
Result<std::unique_ptr<ModelBackend>> make_zoo_backend(std::string_view name, std::uint64_t seed);
std::vector<std::string> zoo_model_names();

// A TorchScript module from `path`.
Result<std::unique_ptr<ModelBackend>> load_torchscript_backend(const std::filesystem::path& path);

}  // namespace shoal::inference::detail
