// Eligibility: whether this device may train now. Phones and laptops train
// when it costs their owner nothing: on mains power and otherwise idle.
#pragma once

namespace shoal::client {

struct EligibilityRules {
  bool require_ac_power = false;  // a battery-powered device waits for its charger
  double max_load_per_core = 0;   // 1-minute load average per core above which it is busy; 0: no limit
};

// True when every rule holds. A machine with no battery or power-supply
// information (a desktop, a server, a container) counts as on mains power.
bool is_eligible(const EligibilityRules& rules);

}  // namespace shoal::client
