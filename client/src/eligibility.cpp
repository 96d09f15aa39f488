#include "shoal/client/eligibility.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace shoal::client {
namespace {

std::string first_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Linux reports each power source in /sys/class/power_supply/<name>/:
// "type" is Mains, Battery, USB...; "online" is 1 for a connected charger.
bool on_ac_power() {
  const std::filesystem::path root = "/sys/class/power_supply";
  std::error_code error;
  bool saw_mains = false;
  for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
    const auto type = first_line(entry.path() / "type");
    if (type != "Mains" && type != "USB") continue;
    saw_mains = true;
    if (first_line(entry.path() / "online") == "1") return true;
  }
  return !saw_mains;
}

bool idle_enough(double max_load_per_core) {
  if (max_load_per_core <= 0) return true;
  double load[1];
  if (getloadavg(load, 1) != 1) return true;
  const double cores = std::max(1u, std::thread::hardware_concurrency());
  return load[0] / cores <= max_load_per_core;
}

}  // namespace

bool is_eligible(const EligibilityRules& rules) {
  return (!rules.require_ac_power || on_ac_power()) && idle_enough(rules.max_load_per_core);
}

}  // namespace shoal::client
