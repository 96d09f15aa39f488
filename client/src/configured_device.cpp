#include "shoal/client/configured_device.h"

#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"
#include "shoal/inference/device.h"

namespace shoal::client {

Result<std::optional<AggregatorLink>> release_link(const AgentConfig& config) {
  if (config.release.repository != kAggregatorRepository) return std::optional<AggregatorLink>();
  if (config.key.empty() || config.server_public_key.empty()) {
    return make_error(ErrorCode::invalid_argument, "agent config: release.repository \"aggregator\" needs agent.key and "
                                                   "aggregator.public_key");
  }
  auto key = crypto::load_identity_key(config.key, crypto::KeyRole::device);
  if (!key) return key.error();
  auto server = crypto::load_public_key(config.server_public_key, crypto::KeyRole::server);
  if (!server) return server.error();
  return std::optional(AggregatorLink{key->keys, server->identity, config.endpoint});
}

Result<std::string> device_key_hex(const AgentConfig& config) {
  if (config.key.empty()) return std::string();
  auto key = crypto::load_identity_key(config.key, crypto::KeyRole::device);
  if (!key) return key.error();
  return crypto::to_hex(key->keys.public_identity().ed25519());
}

Result<std::optional<ReleaseUpdateOptions>> scheduled_releases(const AgentConfig& config,
                                                               std::function<void(updater::InstallStep)> after_step) {
  if (config.release.repository.empty() || config.release.check_every_s <= 0) {
    return std::optional<ReleaseUpdateOptions>();
  }
  auto link = release_link(config);
  if (!link) return link.error();
  ReleaseUpdateOptions options;
  options.state_dir = config.state_dir;
  options.repository = config.release.repository;
  options.aggregator = std::move(link).value();
  options.trusted_root = config.release.trusted_root;
  options.ca_file = config.release.ca_file;
  options.targets_url = config.release.targets_url;
  options.release_model =
      config.release.model.empty() ? std::filesystem::path(config.model).stem().string() : config.release.model;
  options.make_model = [model = config.model, threads = config.threads]() -> Result<inference::Model> {
    if (auto status = inference::set_cpu_threads(threads); !status) return status.error();
    return inference::Model::open(model, 0);  // a fresh model is on the CPU
  };
  options.after_step = std::move(after_step);
  auto key = device_key_hex(config);
  if (!key) return key.error();
  options.device_key_hex = std::move(key).value();
  return std::optional(std::move(options));
}

Result<ConfiguredDevice> start_configured_device(const AgentConfig& config, DeviceStartOptions options) {
  LogSink log;
  if (options.log) log = [sink = options.log, name = config.name](const std::string& line) { sink(name + ": " + line); };
  if (auto status = inference::set_cpu_threads(config.threads); !status) return status.error();
  auto releases = scheduled_releases(config, std::move(options.after_step));
  if (!releases) return releases.error();

  ConfiguredDevice device;
  auto start_runtime = [&]() -> Status {
    RuntimeOptions runtime{config.state_dir, config.model, config.serve, options.in_process,
                           std::move(releases).value(), config.release.check_every_s, log,
                           config.release.report_every_s};
    auto started = DeviceRuntime::start(std::move(runtime));
    if (!started) return started.error();
    device.runtime = std::move(started).value();
    return ok_status();
  };
  if (options.use == AgentUse::run) {
    // Everything rounds need is read before anything starts serving.
    auto key = crypto::load_identity_key(config.key, crypto::KeyRole::device);
    if (!key) return key.error();
    auto server = crypto::load_public_key(config.server_public_key, crypto::KeyRole::server);
    if (!server) return server.error();
    auto train = load_data_source(config.train);
    if (!train) return train.error();
    Dataset held_out;
    if (!config.held_out.empty()) {
      auto loaded = load_data_source(config.held_out);
      if (!loaded) return loaded.error();
      held_out = take_shard(*loaded, config.shard, config.shards);
    }
    auto model = inference::Model::open(config.model, 0);
    if (!model) return model.error();
    auto where = inference::resolve_device(config.device);
    if (!where) return where.error();
    if (auto status = model->to(*where); !status) return status.error();

    if (auto status = start_runtime(); !status) return status.error();

    AgentOptions agent;
    agent.name = config.name;
    agent.endpoint = config.endpoint;
    agent.server = server->identity;
    agent.state_dir = config.state_dir;
    agent.eligibility = config.eligibility;
    agent.on_global_model = [runtime = device.runtime.get()](const weights::Weights& global) {
      runtime->on_global_model(global);
    };
    device.description = "device " + crypto::format_ed25519_public(key->keys.public_identity().ed25519()) + ", " +
                         config.model + " on " + where->name() + ", connecting to " + config.endpoint;
    auto created = Agent::create(agent, key->keys, std::move(model).value(),
                                 take_shard(*train, config.shard, config.shards), std::move(held_out),
                                 options.log ? options.log : LogSink([](const std::string&) {}), config.debug);
    if (!created) return created.error();
    device.agent = std::move(created).value();
    return device;
  }
  if (auto status = start_runtime(); !status) return status.error();
  return device;
}

}  // namespace shoal::client
