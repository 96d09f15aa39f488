// shoal-agent: the device agent's command line.
//
//   shoal-agent init-model --model cnn --seed 1 --out v0.weights
//   shoal-agent train   --model cnn --weights v0.weights --images X.gz --labels Y.gz --out v1.weights
//   shoal-agent predict --model cnn --weights v1.weights --images X.gz --labels Y.gz
//   shoal-agent run --config configs/agent-1.toml        # take part in federated rounds
//   shoal-agent predict --model mlp --state-dir demo/device-1 --images X.gz --labels Y.gz
//   shoal-agent update  --model cnn --state-dir D --repository releases --trusted-root root.json
//   shoal-agent update  --config configs/agent-1.toml    # its [release] settings, e.g. the aggregator's repository
//   shoal-agent rollback --state-dir D
//   shoal-agent release-status --state-dir D
//   shoal-agent serve --config configs/agent-1.toml      # serve its models to apps ([serve])
//   shoal-agent serve --model mlp --weights v1.weights --listen 127.0.0.1:8500
//
// --model is a zoo name or a TorchScript file; data is IDX (--images, --labels), CSV
// (--csv) or synthetic (--synthetic N). Every command takes --device and --threads.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "shoal/client/agent.h"
#include "shoal/client/configured_device.h"
#include "shoal/client/device_runtime.h"
#include "shoal/client/agent_config.h"
#include "shoal/client/dataset.h"
#include "shoal/client/release_update.h"
#include "shoal/client/trainer.h"
#include "shoal/crypto/encoding.h"
#include "shoal/crypto/key_file.h"
#include "shoal/inference/prediction_session.h"
#include "shoal/weights/weights_file.h"

namespace fs = std::filesystem;
using namespace shoal;
using Clock = std::chrono::steady_clock;

namespace {

struct CommonOptions {
  std::string model = "cnn";
  std::string device = "auto";
  int threads = 0;  // 0: one per core
};

struct DataOptions {
  fs::path images, labels, csv;
  std::size_t synthetic = 0;
  std::uint64_t seed = 0;
};

int fail(const Error& error) {
  std::cerr << "shoal-agent: " << error.describe() << "\n";
  return 1;
}

void add_common(CLI::App* command, CommonOptions& options) {
  command->add_option("--model", options.model, "zoo model (logreg, mlp, cnn, mlp-large) or TorchScript file")->capture_default_str();
  command->add_option("--device", options.device, "cpu, cuda, cuda:N, mps or auto")->capture_default_str();
  command->add_option("--threads", options.threads, "CPU threads for libtorch (0: one per core)")
      ->check(CLI::Range(0, 1024));
}

void add_data(CLI::App* command, DataOptions& options) {
  auto* images = command->add_option("--images", options.images, "IDX images file (plain or .gz)");
  auto* labels = command->add_option("--labels", options.labels, "IDX labels file (plain or .gz)");
  auto* csv = command->add_option("--csv", options.csv, "CSV file: features, then the label");
  auto* synthetic = command->add_option("--synthetic", options.synthetic, "N synthetic 1x28x28 samples");
  command->add_option("--data-seed", options.seed, "seed of the synthetic data");
  images->needs(labels);
  labels->needs(images);
  csv->excludes(images)->excludes(synthetic);
  synthetic->excludes(images);
}

Result<client::Dataset> load_data(const DataOptions& options) {
  if (!options.csv.empty()) return client::load_csv(options.csv);
  if (options.synthetic > 0) {
    client::SyntheticSpec spec;
    spec.samples = options.synthetic;
    spec.seed = options.seed;
    return client::make_synthetic(spec);
  }
  if (options.images.empty()) {
    return make_error(ErrorCode::invalid_argument, "no data: give --images and --labels, --csv or --synthetic N");
  }
  return client::load_idx(options.images, options.labels);
}

// The starting weights from `path`, or nullopt for the model's own.
Result<std::optional<weights::Weights>> read_optional_weights(const fs::path& path) {
  if (path.empty()) return std::optional<weights::Weights>();
  auto weights = weights::read_weights_file(path);
  if (!weights) return weights.error();
  return std::optional<weights::Weights>(std::move(weights).value());
}

Result<inference::Model> open_model(const CommonOptions& options, const std::optional<weights::Weights>& weights) {
  if (auto status = inference::set_cpu_threads(options.threads); !status) return status.error();
  auto model = inference::Model::open(options.model, 0);
  if (!model) return model.error();
  if (weights) {
    if (auto status = model->set_weights(*weights); !status) return status.error();
  }
  auto device = inference::resolve_device(options.device);
  if (!device) return device.error();
  if (auto status = model->to(*device); !status) return status.error();
  return model;
}

std::atomic<bool> stop_requested{false};

struct ReleaseOptions {
  fs::path state_dir;
  std::string repository;  // a directory, an http(s) URL, or "aggregator"
  fs::path trusted_root;
  fs::path ca_file;  // for an https repository; empty: the system's CAs
  std::string targets_url;  // where targets/ is served from; empty: the repository
  std::string release_model;  // empty: the --model name
  std::optional<client::AggregatorLink> aggregator;
  fs::path device_key;          // public key file: places the device in rollout stages
  std::string device_key_hex;   // from the config's agent.key
};

// The release settings of an agent config; its keys reach the aggregator's repository.
Result<ReleaseOptions> release_options(const client::AgentConfig& config) {
  auto link = client::release_link(config);
  if (!link) return link.error();
  auto key = client::device_key_hex(config);
  if (!key) return key.error();
  return ReleaseOptions{config.state_dir,           config.release.repository, config.release.trusted_root,
                        config.release.ca_file,     config.release.targets_url, config.release.model,
                        std::move(link).value(),    {},                         std::move(key).value()};
}

// SHOAL_CRASH_AFTER_STEP names an install step ("stage", ...) after which the
// process ends at once, as a power cut would end it: fault injection for tests.
std::function<void(updater::InstallStep)> crash_hook() {
  const char* step = std::getenv("SHOAL_CRASH_AFTER_STEP");
  if (step == nullptr || *step == '\0') return {};
  return [name = std::string(step)](updater::InstallStep done) {
    if (updater::step_name(done) == name) ::_exit(86);
  };
}

client::ReleaseUpdateOptions update_options(const CommonOptions& common, const ReleaseOptions& release) {
  client::ReleaseUpdateOptions options;
  options.state_dir = release.state_dir;
  options.repository = release.repository;
  options.aggregator = release.aggregator;
  options.trusted_root = release.trusted_root;
  options.ca_file = release.ca_file;
  options.targets_url = release.targets_url;
  options.release_model = release.release_model.empty() ? fs::path(common.model).stem().string() : release.release_model;
  options.make_model = [common]() { return open_model(common, std::nullopt); };
  options.after_step = crash_hook();
  options.device_key_hex = release.device_key_hex;
  return options;
}

int update(CommonOptions common, ReleaseOptions release, const fs::path& config_path) {
  if (!config_path.empty()) {  // the agent's config supplies what the flags did not
    auto config = client::load_agent_config(config_path, client::AgentUse::models);
    if (!config) return fail(config.error());
    auto configured = release_options(*config);
    if (!configured) return fail(configured.error());
    if (release.state_dir.empty()) release.state_dir = configured->state_dir;
    if (release.repository.empty()) release.repository = configured->repository;
    if (release.trusted_root.empty()) release.trusted_root = configured->trusted_root;
    if (release.ca_file.empty()) release.ca_file = configured->ca_file;
    if (release.targets_url.empty()) release.targets_url = configured->targets_url;
    if (release.release_model.empty()) release.release_model = configured->release_model;
    release.aggregator = configured->aggregator;
    release.device_key_hex = configured->device_key_hex;
    common.model = config->model;
  }
  if (!release.device_key.empty()) {
    auto key = crypto::load_public_key(release.device_key, crypto::KeyRole::device);
    if (!key) return fail(key.error());
    release.device_key_hex = crypto::to_hex(key->identity.ed25519());
  }
  if (release.state_dir.empty() || release.repository.empty()) {
    return fail(make_error(ErrorCode::invalid_argument, "update needs --state-dir and --repository, or --config"));
  }
  auto outcome = client::update_from_release(update_options(common, release));
  if (!outcome) return fail(outcome.error());
  std::cout << client::describe_install(*outcome) << "\n";
  return 0;
}

int rollback(const fs::path& state_dir) {
  auto version = client::roll_back_release(state_dir);
  if (!version) return fail(version.error());
  std::cout << "rolled back: version " << *version << " is active\n";
  return 0;
}

std::function<void(const std::string&)> stdout_log() {
  auto mutex = std::make_shared<std::mutex>();
  return [mutex](const std::string& line) {
    std::lock_guard lock(*mutex);
    std::cout << line << std::endl;
  };
}

void stop_on_signals() {
  std::signal(SIGINT, [](int) { stop_requested = true; });
  std::signal(SIGTERM, [](int) { stop_requested = true; });
}

// `run` (rounds, serving and release checks) and `serve --config` (serving and release checks).
int run_configured(const fs::path& config_path, client::AgentUse use) {
  auto config = client::load_agent_config(config_path, use);
  if (!config) return fail(config.error());
  const auto log = stdout_log();
  client::DeviceStartOptions options;
  options.use = use;
  options.log = log;
  options.after_step = crash_hook();
  auto device = client::start_configured_device(*config, std::move(options));
  if (!device) return fail(device.error());
  if (device->agent) log(config->name + ": " + device->description);
  stop_on_signals();
  device->runtime->run(stop_requested, device->agent.get());
  return 0;
}

struct ServeOptions {
  CommonOptions common;
  fs::path weights;
  std::string listen = "127.0.0.1:8500";
  bool listen_given = false;  // with a Unix socket, the port is served only when --listen is given
  fs::path unix_socket;
  fs::path token_file;
  bool allow_remote = false;
  serving::BatcherOptions batching;
};

// `serve --model --weights`: one local model, served under its name.
int serve_model(ServeOptions options) {
  if (auto status = inference::set_cpu_threads(options.common.threads); !status) return fail(status.error());
  const auto colon = options.listen.rfind(':');
  serving::ServiceOptions service;
  try {
    if (colon == std::string::npos) throw std::invalid_argument("no port");
    service.host = options.listen.substr(0, colon);
    if (service.host.size() > 2 && service.host.front() == '[') service.host = service.host.substr(1, service.host.size() - 2);
    service.port = std::stoi(options.listen.substr(colon + 1));
  } catch (const std::exception&) {
    return fail(make_error(ErrorCode::invalid_argument, "--listen '" + options.listen + "' is not HOST:PORT"));
  }
  service.unix_socket = options.unix_socket;
  service.tcp = options.unix_socket.empty() || options.listen_given;
  service.allow_remote = options.allow_remote;
  service.batching = options.batching;
  if (!options.token_file.empty()) {
    auto token = serving::read_bearer_token(options.token_file);
    if (!token) return fail(token.error());
    service.bearer_token = *token;
  }
  auto weights = read_optional_weights(options.weights);
  if (!weights) return fail(weights.error());
  auto model = inference::Model::open(options.common.model, 0);
  if (!model) return fail(model.error());
  const auto initial = *weights ? **weights : model->get_weights(0);
  auto device = inference::resolve_device(options.common.device);
  if (!device) return fail(device.error());
  auto served = serving::ServedModel::load(std::move(model).value(), initial, "file", {}, *device);
  if (!served) return fail(served.error());
  const std::string name = (*served)->info().name;
  auto started = serving::InferenceService::start(service);
  if (!started) return fail(started.error());
  (*started)->serve(*served, serving::SwapCause::load);
  std::cout << "serving " << name << " version " << initial.version() << " on " << device->name() << " at "
            << (*started)->addresses() << " (Open Inference Protocol v2)" << std::endl;
  stop_on_signals();
  while (!stop_requested.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

int init_model(const CommonOptions& options, std::uint64_t seed, const fs::path& out) {
  auto model = inference::Model::open(options.model, seed);
  if (!model) return fail(model.error());
  if (auto status = weights::write_weights_file(out, model->get_weights(0)); !status) return fail(status.error());
  const auto& layout = model->layout();
  std::cout << "wrote " << out.string() << ": " << model->name() << " version 0, " << layout.parameter_value_count()
            << " parameter values";
  if (layout.has_buffers()) std::cout << " and " << layout.value_count() - layout.parameter_value_count() << " buffer values";
  std::cout << ", layout " << layout.short_hash() << "\n";
  return 0;
}

int train(const CommonOptions& options, const DataOptions& data_options, const fs::path& weights_path,
          const client::TrainingPlan& plan, const fs::path& out) {
  auto data = load_data(data_options);
  if (!data) return fail(data.error());
  auto start_weights = read_optional_weights(weights_path);
  if (!start_weights) return fail(start_weights.error());
  const std::uint64_t version = *start_weights ? (*start_weights)->version() : 0;
  auto model = open_model(options, *start_weights);
  if (!model) return fail(model.error());
  const auto start = Clock::now();
  auto result = client::train(*model, *data, plan);
  if (!result) return fail(result.error());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (auto status = weights::write_weights_file(out, model->get_weights(version + 1)); !status) {
    return fail(status.error());
  }
  std::printf("trained %s on %zu samples on %s, %d epoch(s) in %.1f s (%.0f samples/s)\n", model->name().c_str(),
              result->samples, model->device().name().c_str(), plan.epochs, seconds,
              result->samples * plan.epochs / seconds);
  std::printf("  before: loss %.4f accuracy %.4f\n  after:  loss %.4f accuracy %.4f\n", result->before.loss,
              result->before.accuracy, result->after.loss, result->after.accuracy);
  std::printf("wrote %s (version %llu)\n", out.string().c_str(), static_cast<unsigned long long>(version + 1));
  return 0;
}

int predict(const CommonOptions& options, const DataOptions& data_options, fs::path weights_path,
            const fs::path& state_dir, std::size_t batch, std::size_t show) {
  if (!state_dir.empty()) {
    // The active release model if one is installed, else the latest global model from rounds.
    weights_path = client::active_release_model(state_dir).value_or(client::Agent::model_path(state_dir));
  }
  auto data = load_data(data_options);
  if (!data) return fail(data.error());
  auto start_weights = read_optional_weights(weights_path);
  if (!start_weights) return fail(start_weights.error());
  if (!state_dir.empty() && *start_weights) {
    // FedBN: this device's own values of the tensors its federation keeps local.
    auto& global = **start_weights;
    auto local = client::read_local_values(client::Agent::local_tensors_path(state_dir), global.layout());
    if (!local) return fail(local.error());
    if (!local->empty()) {
      client::overlay_local(*local, local->tensors, global);
      std::printf("with this device's own values of %zu local tensors\n", local->tensors.size());
    }
  }
  auto model = open_model(options, *start_weights);
  if (!model) return fail(model.error());
  const auto device = model->device();  // open_model resolved it and moved the model there
  auto session = inference::PredictionSession::open(std::move(model).value(), device, data->sample_shape);
  if (!session) return fail(session.error());
  std::size_t correct = 0;
  std::vector<std::int64_t> labels;
  const auto start = Clock::now();
  for (std::size_t first = 0; first < data->size(); first += batch) {
    const std::size_t count = std::min(batch, data->size() - first);
    auto predictions = session->predict(
        std::span<const float>(data->features).subspan(first * data->sample_size(), count * data->sample_size()), count);
    if (!predictions) return fail(predictions.error());
    labels.insert(labels.end(), predictions->labels.begin(), predictions->labels.end());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (std::size_t i = 0; i < data->size(); ++i) correct += labels[i] == data->labels[i];
  for (std::size_t i = 0; i < std::min(show, data->size()); ++i) {
    std::printf("sample %zu: predicted %lld, label %lld\n", i, static_cast<long long>(labels[i]),
                static_cast<long long>(data->labels[i]));
  }
  std::printf("predicted %zu samples in batches of %zu in %.3f s (%.1f us/sample); accuracy %.4f\n", data->size(),
              batch, seconds, 1e6 * seconds / data->size(), static_cast<double>(correct) / data->size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoal-agent: the shoal device agent"};
  app.require_subcommand(1);

  CommonOptions init_options;
  std::uint64_t seed = 0;
  fs::path init_out;
  auto* init = app.add_subcommand("init-model", "write version 0 of a zoo model or a TorchScript file's model");
  init->add_option("--model", init_options.model, "zoo model (logreg, mlp, cnn, mlp-large) or TorchScript file")
      ->capture_default_str();
  init->add_option("--seed", seed, "initialisation seed of a zoo model (a TorchScript file's weights are its own)")
      ->capture_default_str();
  init->add_option("--out", init_out, "weights file to write")->required();

  CommonOptions train_options;
  DataOptions train_data;
  fs::path train_weights, train_out;
  client::TrainingPlan plan;
  auto* train_command = app.add_subcommand("train", "train locally and write the updated weights");
  add_common(train_command, train_options);
  add_data(train_command, train_data);
  train_command->add_option("--weights", train_weights, "weights file to start from (default: the model's own)");
  train_command->add_option("--out", train_out, "weights file to write")->required();
  train_command->add_option("--epochs", plan.epochs)->capture_default_str();
  train_command->add_option("--batch-size", plan.batch_size)->capture_default_str();
  train_command->add_option("--learning-rate", plan.learning_rate)->capture_default_str();
  train_command->add_option("--momentum", plan.momentum)->capture_default_str();
  train_command->add_option("--weight-decay", plan.weight_decay)->capture_default_str();
  train_command->add_option("--proximal-mu", plan.proximal_mu, "FedProx mu")->capture_default_str();
  train_command->add_option("--seed", plan.seed, "shuffling seed")->capture_default_str();

  CommonOptions predict_options;
  DataOptions predict_data;
  fs::path predict_weights;
  std::size_t batch = 64, show = 0;
  auto* predict_command = app.add_subcommand("predict", "predict classes for a dataset and report accuracy");
  add_common(predict_command, predict_options);
  add_data(predict_command, predict_data);
  fs::path predict_state_dir;
  auto* weights_option = predict_command->add_option("--weights", predict_weights, "weights file to load");
  predict_command->add_option("--state-dir", predict_state_dir,
                              "an agent's state directory: use its active release, else its latest global model")
      ->excludes(weights_option);

  fs::path run_config;
  auto* run_command = app.add_subcommand("run", "take part in federated rounds, as configured");
  run_command->add_option("--config", run_config, "agent TOML file (configs/agent-1.toml documents every key)")
      ->required()
      ->check(CLI::ExistingFile);
  predict_command->add_option("--batch", batch, "samples per batch")->capture_default_str()->check(CLI::PositiveNumber);
  predict_command->add_option("--show", show, "print the first N predictions")->capture_default_str();

  CommonOptions update_common;
  ReleaseOptions release;
  auto* update_command = app.add_subcommand("update", "install the newest signed release of the model");
  add_common(update_command, update_common);
  fs::path update_config;
  update_command->add_option("--config", update_config, "agent TOML file: its state_dir, model and [release] settings")
      ->check(CLI::ExistingFile);
  update_command->add_option("--state-dir", release.state_dir, "the agent's state directory");
  update_command->add_option("--repository", release.repository,
                             "the release repository: a directory, an http(s) URL, or 'aggregator' (with --config)");
  update_command->add_option("--trusted-root", release.trusted_root,
                             "the operator's root.json, trusted on the first update");
  update_command->add_option("--ca-file", release.ca_file, "CA certificates for an https repository (default: the system's)")
      ->check(CLI::ExistingFile);
  update_command->add_option("--targets-url", release.targets_url,
                             "where the repository's targets/ is served from, if elsewhere (a URL or directory)");
  update_command->add_option("--release-model", release.release_model,
                             "the model's name in the repository (default: --model)");
  update_command->add_option("--device-key", release.device_key,
                             "the device's public key file, which places it in staged rollouts")
      ->check(CLI::ExistingFile);

  fs::path rollback_state_dir;
  auto* rollback_command = app.add_subcommand("rollback", "make the previous release model active again");
  rollback_command->add_option("--state-dir", rollback_state_dir, "the agent's state directory")->required();

  fs::path status_state_dir;
  auto* status_command = app.add_subcommand("release-status", "show the installed release models and trusted metadata");
  status_command->add_option("--state-dir", status_state_dir, "the agent's state directory")->required();

  ServeOptions serve_options;
  serve_options.common.model.clear();  // serve takes --config or --model
  fs::path serve_config_path;
  auto* serve_command = app.add_subcommand("serve", "serve predictions to apps over HTTP (Open Inference Protocol v2)");
  auto* serve_config_option = serve_command->add_option(
      "--config", serve_config_path, "agent TOML file: serve its state directory's models ([serve] settings)");
  serve_config_option->check(CLI::ExistingFile);
  serve_command->add_option("--model", serve_options.common.model, "zoo name or TorchScript file, served under its name")
      ->excludes(serve_config_option);
  serve_command->add_option("--weights", serve_options.weights, "weights file (default: the model's own)")
      ->excludes(serve_config_option);
  serve_command->add_option("--device", serve_options.common.device, "cpu, cuda, cuda:N, mps or auto")
      ->capture_default_str();
  serve_command->add_option("--threads", serve_options.common.threads, "CPU threads for libtorch (0: one per core)");
  serve_command->add_option("--listen", serve_options.listen, "HOST:PORT (loopback unless --allow-remote)")
      ->capture_default_str();
  serve_command->add_flag("--allow-remote", serve_options.allow_remote, "listen on an address beyond this device");
  serve_command->add_option("--unix-socket", serve_options.unix_socket,
                            "serve on this Unix socket too (mode 0600); with it, the port only with --listen");
  serve_command->add_option("--token-file", serve_options.token_file, "bearer token apps must send (mode 0600)");
  serve_command->add_option("--max-batch", serve_options.batching.max_batch, "samples per batch")->capture_default_str();
  std::int64_t max_delay_us = 0;
  serve_command->add_option("--max-delay-us", max_delay_us, "how long a request may wait for a fuller batch")
      ->capture_default_str()
      ->check(CLI::Range(0, 1'000'000));

  CLI11_PARSE(app, argc, argv);
  if (*serve_command) {
    if (!serve_config_path.empty()) return run_configured(serve_config_path, client::AgentUse::serve);
    if (serve_options.common.model.empty()) {
      return fail(make_error(ErrorCode::invalid_argument, "serve needs --config FILE or --model NAME_OR_FILE"));
    }
    serve_options.batching.max_delay = std::chrono::microseconds(max_delay_us);
    serve_options.listen_given = serve_command->count("--listen") > 0;
    return serve_model(serve_options);
  }
  if (*status_command) {
    auto text = client::describe_release_state(status_state_dir);
    if (!text) return fail(text.error());
    std::cout << *text;
    return 0;
  }
  if (*update_command) return update(update_common, release, update_config);
  if (*rollback_command) return rollback(rollback_state_dir);
  if (*init) return init_model(init_options, seed, init_out);
  if (*train_command) return train(train_options, train_data, train_weights, plan, train_out);
  if (*run_command) return run_configured(run_config, client::AgentUse::run);
  return predict(predict_options, predict_data, predict_weights, predict_state_dir, batch, show);
}
