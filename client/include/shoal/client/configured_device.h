// What an agent config starts: the device runtime (its models and the
// service that answers apps) and, to take part in rounds, the agent. Shared
// by `shoal-agent run`, `shoal-agent serve --config` and the C API
// (shoal/shoal.h), so that all three read a config the same way.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "shoal/base/result.h"
#include "shoal/client/agent.h"
#include "shoal/client/agent_config.h"
#include "shoal/client/device_runtime.h"
#include "shoal/client/release_update.h"

namespace shoal::client {

// How to reach the aggregator's repository: set only when [release]
// repository is "aggregator" (the device key and the server's key are read).
Result<std::optional<AggregatorLink>> release_link(const AgentConfig& config);

// The hex ed25519 key of the device `config` names (agent.key), which
// places it in rollout stages; empty without one.
Result<std::string> device_key_hex(const AgentConfig& config);

// The release checks of `config`'s [release] section, smoke-testing on
// the CPU with the configured threads; nullopt without a repository or a
// schedule. `after_step` is fault injection for tests.
Result<std::optional<ReleaseUpdateOptions>> scheduled_releases(
    const AgentConfig& config, std::function<void(updater::InstallStep)> after_step = {});

struct ConfiguredDevice {
  std::unique_ptr<DeviceRuntime> runtime;
  std::unique_ptr<Agent> agent;  // null for AgentUse::serve
  std::string description;       // "device <key>, cnn on cpu, connecting to tcp://..." (rounds only)
};

struct DeviceStartOptions {
  AgentUse use = AgentUse::run;
  bool in_process = false;  // see RuntimeOptions::in_process
  LogSink log;              // each line is prefixed with the config's name
  std::function<void(updater::InstallStep)> after_step;
};

// Reads the keys and data `config` names, starts the runtime (serving at
// once, if there is something to serve) and, for AgentUse::run, creates
// the agent whose new global models the runtime takes. Nothing runs until
// runtime->run(stop, agent.get()).
Result<ConfiguredDevice> start_configured_device(const AgentConfig& config, DeviceStartOptions options);

}  // namespace shoal::client
