#include "shoal/client/release_update.h"

#include <cmath>

#include "shoal/base/durable_file.h"
#include "shoal/crypto/encoding.h"
#include "shoal/client/aggregator_fetcher.h"
#include "shoal/inference/prediction_session.h"
#include "shoal/updater/http_fetcher.h"
#include "shoal/weights/weights_file.h"

namespace fs = std::filesystem;

namespace shoal::client {

namespace {

// The fetcher for one place: a directory, an http(s) URL, or "aggregator".
Result<std::unique_ptr<updater::RepositoryFetcher>> open_place(const std::string& repository,
                                                               const std::optional<AggregatorLink>& aggregator,
                                                               const std::filesystem::path& ca_file,
                                                               const std::filesystem::path& partial_dir) {
  if (repository.empty()) {
    return make_error(ErrorCode::invalid_argument, "no release repository given");
  }
  if (repository == kAggregatorRepository) {
    if (!aggregator) {
      return make_error(ErrorCode::invalid_argument,
                        "the repository is the aggregator's, but no aggregator endpoint and keys are configured");
    }
    constexpr std::chrono::seconds kReplyTimeout{30};
    auto fetcher = AggregatorFetcher::connect(aggregator->device, aggregator->server, aggregator->endpoint,
                                              kReplyTimeout);
    if (!fetcher) return fetcher.error();
    return std::unique_ptr<updater::RepositoryFetcher>(std::move(fetcher).value());
  }
  if (updater::is_http_repository(repository)) {
    updater::HttpFetcherOptions http;
    http.ca_file = ca_file;
    http.partial_dir = partial_dir;
    auto fetcher = updater::HttpFetcher::open(repository, http);
    if (!fetcher) return fetcher.error();
    return std::unique_ptr<updater::RepositoryFetcher>(std::move(fetcher).value());
  }
  if (!fs::is_directory(repository)) {
    return make_error(ErrorCode::not_found, "release repository " + repository + " is not a directory");
  }
  return std::unique_ptr<updater::RepositoryFetcher>(std::make_unique<updater::DirectoryFetcher>(repository));
}

}  // namespace

Result<std::unique_ptr<updater::RepositoryFetcher>> open_repository(const std::string& repository,
                                                                    const std::optional<AggregatorLink>& aggregator,
                                                                    const std::filesystem::path& ca_file,
                                                                    const std::string& targets_url,
                                                                    const std::filesystem::path& partial_dir) {
  auto metadata = open_place(repository, aggregator, ca_file, partial_dir);
  if (!metadata || targets_url.empty()) return metadata;
  auto targets = open_place(targets_url, aggregator, ca_file, partial_dir);
  if (!targets) return make_error(targets.error().code, "targets_url: " + targets.error().message);
  return std::unique_ptr<updater::RepositoryFetcher>(
      std::make_unique<updater::SplitFetcher>(std::move(metadata).value(), std::move(targets).value()));
}

Status smoke_test(inference::Model model, const weights::Weights& weights) {
  if (auto status = model.set_weights(weights); !status) return status;
  if (model.sample_shape().empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "model '" + model.name() + "' does not declare the shape of its input, so no probe can be built; "
                      "give the module a `sample_shape: List[int]` attribute (e.g. [1, 28, 28]) before scripting it");
  }
  const auto device = model.device();
  auto session = inference::PredictionSession::open(std::move(model), device, {}, /*warmup_batches=*/0);
  if (!session) return session.error();
  constexpr std::size_t kProbeBatch = 4;
  std::size_t sample_size = 1;
  for (auto dim : session->sample_shape()) sample_size *= static_cast<std::size_t>(dim);
  // A fixed probe: a ramp over [0, 1], like pixel intensities.
  std::vector<float> probe(kProbeBatch * sample_size);
  for (std::size_t i = 0; i < probe.size(); ++i) probe[i] = static_cast<float>(i % 256) / 255.0f;
  auto outputs = session->predict(probe, kProbeBatch, inference::OutputKind::raw);
  if (!outputs) return outputs.error();
  for (std::size_t i = 0; i < outputs->values.size(); ++i) {
    if (!std::isfinite(outputs->values[i])) {
      return make_error(ErrorCode::verification, "the model's output " + std::to_string(i) +
                                                     " on the probe input is not finite");
    }
  }
  return ok_status();
}

Result<updater::InstallOutcome> update_from_release(const ReleaseUpdateOptions& options) {
  const updater::UnixTime start_time = updater::now_utc();  // spec 5.1: fixed before anything is fetched
  const fs::path trust_dir = updater::release_trust_dir(options.state_dir);
  if (!fs::exists(trust_dir / "root.json")) {
    if (options.trusted_root.empty()) {
      return make_error(ErrorCode::not_found,
                        "this device trusts no release root yet: give the operator's root.json (--trusted-root)");
    }
    auto root = base::read_file(options.trusted_root, 1 << 20);
    if (!root) return root.error();
    const std::span bytes(reinterpret_cast<const std::uint8_t*>(root->data()), root->size());
    if (auto status = updater::TufClient::trust_root(trust_dir, bytes, options.trusted_root.string()); !status) {
      return status.error();
    }
  }
  auto fetcher = open_repository(options.repository, options.aggregator, options.ca_file, options.targets_url,
                                 release_partial_dir(options.state_dir));
  if (!fetcher) return fetcher.error();
  auto client = updater::TufClient::open(trust_dir);
  if (!client) return client.error();
  auto store = updater::ModelStore::open(updater::release_models_dir(options.state_dir));
  if (!store) return store.error();
  updater::InstallOptions install;
  install.model = options.release_model;
  install.start_time = start_time;
  install.after_step = options.after_step;
  install.on_attempt = options.on_attempt;
  install.device_key_hex = options.device_key_hex;
  if (install.device_key_hex.empty() && options.aggregator) {
    install.device_key_hex = crypto::to_hex(options.aggregator->device.public_identity().ed25519());
  }
  install.smoke_test = [&](const weights::Weights& weights) -> Status {
    auto model = options.make_model();
    if (!model) return model.error();
    return smoke_test(std::move(model).value(), weights);
  };
  return updater::install_latest_release(**fetcher, *client, *store, install);
}

Result<std::uint64_t> roll_back_release(const fs::path& state_dir) {
  auto store = updater::ModelStore::open(updater::release_models_dir(state_dir));
  if (!store) return store.error();
  if (auto status = store->rollback(); !status) return status.error();
  auto active = store->load_active();
  if (!active) return active.error();
  return (*active)->version();
}

Result<std::string> describe_release_state(const fs::path& state_dir) {
  auto store = updater::ModelStore::open(updater::release_models_dir(state_dir));
  if (!store) return store.error();
  auto version_of = [&](const std::optional<std::string>& file) -> std::string {
    if (!file) return "none";
    auto weights = weights::read_weights_file(store->path_of(*file));
    return weights ? "version " + std::to_string(weights->version()) + " (" + *file + ")"
                   : "unreadable: " + weights.error().message;
  };
  std::string text = "active: " + version_of(store->active()) + "\nprevious: " + version_of(store->previous()) + "\n";
  if (store->rolled_back()) text += "rolled back from: version " + std::to_string(*store->rolled_back()) + "\n";
  const fs::path trust_dir = updater::release_trust_dir(state_dir);
  if (!fs::exists(trust_dir / "root.json")) return text + "trusted root: none yet\n";
  auto client = updater::TufClient::open(trust_dir);
  if (!client) return text + "trusted metadata: " + client.error().message + "\n";
  const auto& trusted = client->trusted();
  text += "trusted root: version " + std::to_string(trusted.root.version) + ", expires " +
          updater::format_utc(trusted.root.expires) + "\n";
  if (trusted.targets) text += "trusted targets: version " + std::to_string(trusted.targets->version) + "\n";
  return text;
}

std::string describe_install(const updater::InstallOutcome& outcome) {
  if (outcome.held_back) {
    return "version " + std::to_string(outcome.version) +
           " stays active: the newest release is one this device rolled back from";
  }
  if (outcome.halted_rollback) {
    return "rolled back from version " + std::to_string(*outcome.halted_rollback) +
           ", whose rollout was halted; version " + std::to_string(outcome.version) + " is active";
  }
  if (!outcome.installed && outcome.outside_rollout) {
    return "version " + std::to_string(outcome.version) +
           " stays active: the newest release's rollout has not reached this device";
  }
  if (!outcome.installed) return "up to date: version " + std::to_string(outcome.version) + " is active";
  std::string text = "installed " + outcome.file->describe() + "; version " + std::to_string(outcome.version) + " is active";
  if (outcome.previous_version) text += ", version " + std::to_string(*outcome.previous_version) + " kept for rollback";
  return text;
}

std::optional<fs::path> active_release_model(const fs::path& state_dir) {
  if (!fs::exists(updater::release_models_dir(state_dir) / "CURRENT")) return std::nullopt;
  auto store = updater::ModelStore::open(updater::release_models_dir(state_dir));
  if (!store || !store->active()) return std::nullopt;
  return store->path_of(*store->active());
}

}  // namespace shoal::client
