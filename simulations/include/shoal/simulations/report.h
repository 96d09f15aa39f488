// report.svg: a simulation's results as one self-contained SVG file (no
// scripts, fonts or links), for a browser or a CI artefact: test accuracy
// and loss by round and by virtual hour, participation by round (picked,
// reported, and where the others dropped out), bytes up and down, and the
// privacy spent (epsilon) when differential privacy is on.
#pragma once

#include <filesystem>
#include <string>

#include "shoal/simulations/simulation.h"

namespace shoal::simulations {

// The report as SVG text.
std::string render_report(const SimulationConfig& config, const SimulationResult& result);

// Writes render_report() to `path` atomically.
Status write_report(const std::filesystem::path& path, const SimulationConfig& config, const SimulationResult& result);

}  // namespace shoal::simulations
