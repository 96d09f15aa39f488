// shoal-aggregator: the federated-learning server.
//
//   shoal-aggregator run --config configs/aggregator.toml [--rounds 20 --bind tcp://0.0.0.0:7400 ...]
//   shoal-aggregator enroll device.pub --config configs/aggregator.toml [--name laptop-1]
//   shoal-aggregator revoke device.pub --config configs/aggregator.toml
//   shoal-aggregator rollout status cnn --config configs/aggregator.toml
//
// enroll and revoke edit the enrolment list in place; a running aggregator
// picks the change up at the next handshake, and within a second cuts off a
// connected device that was revoked, without a restart.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "shoal/aggregator/aggregator_server.h"
#include "shoal/crypto/key_file.h"
#include "shoal/protocol/enrolment.h"
#include "shoal/updater/rollout_control.h"

namespace fs = std::filesystem;
using namespace shoal;

namespace {

std::atomic<bool> stop_requested{false};

int fail(const Error& error) {
  std::cerr << "shoal-aggregator: " << error.describe() << "\n";
  return 1;
}

// Settings a command line may override, left unset to keep the file's.
struct Overrides {
  std::optional<std::string> bind;
  std::optional<fs::path> state_dir;
  std::optional<fs::path> metrics_log;
  std::optional<std::uint64_t> rounds;
  std::optional<std::size_t> min_devices;
  std::optional<double> train_deadline_s;
};

Result<aggregator::AggregatorConfig> load_config(const fs::path& path, const Overrides& overrides) {
  auto config = aggregator::load_aggregator_config(path);
  if (!config) return config.error();
  if (overrides.bind) config->bind = *overrides.bind;
  if (overrides.state_dir) config->state_dir = *overrides.state_dir;
  if (overrides.metrics_log) config->metrics_log = *overrides.metrics_log;
  if (overrides.rounds) config->round.final_version = *overrides.rounds;
  if (overrides.min_devices) config->round.min_devices = *overrides.min_devices;
  if (overrides.train_deadline_s) {
    config->round.train_deadline = std::chrono::milliseconds(static_cast<std::int64_t>(*overrides.train_deadline_s * 1000));
  }
  if (auto status = config->validate(); !status) return make_error(status.error().code, "after command-line overrides: " + status.error().message);
  return config;
}

int run(const fs::path& config_path, const Overrides& overrides) {
  auto config = load_config(config_path, overrides);
  if (!config) return fail(config.error());
  std::cout << std::unitbuf;  // each log line reaches a redirected file at once
  auto server = aggregator::AggregatorServer::open(*config, std::cout);
  if (!server) return fail(server.error());
  std::signal(SIGINT, [](int) { stop_requested = true; });
  std::signal(SIGTERM, [](int) { stop_requested = true; });
  if (auto status = (*server)->run(stop_requested); !status) return fail(status.error());
  return 0;
}

int enroll(const fs::path& config_path, const fs::path& key_file, std::string name, bool revoke) {
  auto config = aggregator::load_aggregator_config(config_path);
  if (!config) return fail(config.error());
  auto key = crypto::load_public_key(key_file, crypto::KeyRole::device);
  if (!key) return fail(key.error());
  const auto& identity = key->identity;
  const auto key_text = crypto::format_ed25519_public(identity.ed25519());
  if (revoke) {
    if (auto status = protocol::revoke_device(config->enrolment, identity); !status) return fail(status.error());
    std::cout << "revoked " << key_text << " from " << config->enrolment.string()
              << "; new connections from it are refused from now on\n";
    return 0;
  }
  if (name.empty()) name = key_file.stem().string();
  if (auto status = protocol::enroll_device(config->enrolment, identity, name); !status) return fail(status.error());
  std::cout << "enrolled " << key_text << " (" << name << ") in " << config->enrolment.string() << "\n";
  return 0;
}

// The model's rollout as the repository says, and what devices reported about it.
int rollout_status(const fs::path& config_path, const std::string& model) {
  auto config = aggregator::load_aggregator_config(config_path);
  if (!config) return fail(config.error());
  if (config->release_repository.empty()) {
    return fail(make_error(ErrorCode::invalid_argument, config_path.string() + " serves no release.repository"));
  }
  auto repository = updater::ReleaseRepository::open(config->release_repository);
  if (!repository) return fail(repository.error());
  auto rollout = updater::current_rollout(*repository, model);
  if (!rollout) return fail(rollout.error());
  if (!*rollout) return fail(make_error(ErrorCode::not_found, "model '" + model + "' has no rollout"));
  const auto now = updater::now_utc();
  std::cout << updater::describe_rollout(**rollout, now);
  auto health = aggregator::replay_health(config->metrics_path());
  if (!health) return fail(health.error());
  for (const std::uint64_t version : {(*rollout)->version}) {
    const auto seen = health->health(model, version);
    std::printf("health of version %llu: %llu device(s) tried it, %llu failed, %llu run it now",
                static_cast<unsigned long long>(version), static_cast<unsigned long long>(seen.tried),
                static_cast<unsigned long long>(seen.failed), static_cast<unsigned long long>(seen.running));
    if (seen.accuracy_pairs > 0) {
      std::printf("; held-out accuracy %+.2f%% against the version before, on %llu device(s)",
                  100 * seen.mean_accuracy_change, static_cast<unsigned long long>(seen.accuracy_pairs));
    }
    std::printf("\n");
  }
  if (auto reason = health->halt_reason(**rollout, config->rollout.policy)) {
    std::cout << "the policy says halt: " << *reason << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoal-aggregator: the shoal federated-learning server"};
  app.require_subcommand(1);
  fs::path config_path;
  auto add_config = [&](CLI::App* command) {
    command->add_option("--config", config_path, "aggregator TOML file (configs/aggregator.toml documents every key)")
        ->required()
        ->check(CLI::ExistingFile);
  };

  Overrides overrides;
  auto* run_command = app.add_subcommand("run", "serve rounds until the configured version is reached or SIGINT");
  add_config(run_command);
  run_command->add_option("--bind", overrides.bind, "override server.bind");
  run_command->add_option("--state-dir", overrides.state_dir, "override server.state_dir");
  run_command->add_option("--metrics-log", overrides.metrics_log, "override server.metrics_log");
  run_command->add_option("--rounds", overrides.rounds, "override server.rounds");
  run_command->add_option("--min-devices", overrides.min_devices, "override cohort.min_devices");
  run_command->add_option("--train-deadline", overrides.train_deadline_s, "override cohort.train_deadline_s (seconds)")
      ->check(CLI::PositiveNumber);

  fs::path enroll_key, revoke_key;
  std::string name;
  auto* enroll_command = app.add_subcommand("enroll", "admit a device's public key");
  add_config(enroll_command);
  enroll_command->add_option("key", enroll_key, "the device's .pub file")->required()->check(CLI::ExistingFile);
  enroll_command->add_option("--name", name, "a name for the device (default: the file's stem)");
  auto* revoke_command = app.add_subcommand("revoke", "remove a device's public key");
  add_config(revoke_command);
  revoke_command->add_option("key", revoke_key, "the device's .pub file")->required()->check(CLI::ExistingFile);

  std::string rollout_model;
  auto* rollout_command = app.add_subcommand("rollout", "staged rollouts of the release repository it serves");
  rollout_command->require_subcommand(1);
  auto* rollout_status_command =
      rollout_command->add_subcommand("status", "the rollout's stages and what devices reported about it");
  add_config(rollout_status_command);
  rollout_status_command->add_option("MODEL", rollout_model, "the model")->required();

  CLI11_PARSE(app, argc, argv);
  if (*run_command) return run(config_path, overrides);
  if (*rollout_command) return rollout_status(config_path, rollout_model);
  if (*enroll_command) return enroll(config_path, enroll_key, name, false);
  return enroll(config_path, revoke_key, "", true);
}
