#include "shoal/client/agent_config.h"

#include "shoal/client/release_update.h"
#include "shoal/updater/http_fetcher.h"

namespace shoal::client {
namespace {

void read_source(config::ConfigFile& file, const std::string& prefix, DataSource& source) {
  file.read_path(prefix + "images", source.images);
  file.read_path(prefix + "labels", source.labels);
  file.read_path(prefix + "csv", source.csv);
}

Status check_source(const DataSource& source, const char* name) {
  auto invalid = [&](const std::string& why) {
    return make_error(ErrorCode::invalid_argument, std::string("agent config: ") + name + " " + why);
  };
  if (!source.images.empty() != !source.labels.empty()) return invalid("needs both images and labels");
  if (!source.images.empty() && !source.csv.empty()) return invalid("has both IDX files and a CSV file; give one");
  return ok_status();
}

Result<ServeSource> parse_serve_source(const std::string& name) {
  if (name == "release") return ServeSource::release;
  if (name == "latest-global") return ServeSource::latest_global;
  return make_error(ErrorCode::invalid_argument, "expected \"release\" or \"latest-global\", got \"" + name + "\"");
}

void read_serve(config::ConfigFile& file, ServeSettings& serve) {
  file.read_choice("serve.model", serve.source, parse_serve_source);
  file.read("serve.name", serve.name);
  file.read_path("serve.token_file", serve.token_file);
  auto& service = serve.service;
  file.read("serve.host", service.host);
  file.read("serve.port", service.port);
  file.read_path("serve.unix_socket", service.unix_socket);
  // Served over HTTP where either is set: the port, the Unix socket, or both.
  service.tcp = file.has("serve.port");
  serve.enabled = service.tcp || !service.unix_socket.empty();
  file.read("serve.allow_remote", service.allow_remote);
  file.read("serve.max_body_bytes", service.max_body_bytes);
  file.read("serve.max_request_samples", service.max_request_samples);
  file.read("serve.http_threads", service.http_threads);
  file.read("serve.max_batch", service.batching.max_batch);
  int delay_us = static_cast<int>(service.batching.max_delay.count());
  file.read("serve.max_delay_us", delay_us);
  service.batching.max_delay = std::chrono::microseconds(delay_us);
  file.read("serve.max_queued_samples", service.batching.max_queued_samples);
}

// Where releases come from: "aggregator" and http(s) URLs as written, anything else a directory relative to
// the config file.
void read_place(config::ConfigFile& file, std::string_view key, std::string& place) {
  file.read(key, place);
  if (place.empty() || place == kAggregatorRepository || updater::is_http_repository(place)) return;
  std::filesystem::path directory = place;
  file.read_path(key, directory);
  place = directory.string();
}

}  // namespace

Status AgentConfig::validate_for_serving(bool models_only) const {
  if (state_dir.empty()) {
    return make_error(ErrorCode::invalid_argument, "agent config: agent.state_dir is required to serve its models");
  }
  if (!serve.enabled && !models_only) {
    return make_error(ErrorCode::invalid_argument,
                      "agent config: serve.port (0: any free port) or serve.unix_socket is required to serve");
  }
  auto service = serve.service;
  service.listen = serve.enabled;  // without a port, no HTTP
  if (auto status = serving::validate(service); !status) {
    return make_error(status.error().code, "agent config: " + status.error().message);
  }
  return ok_status();
}

Status AgentConfig::validate() const {
  auto missing = [](const char* key) {
    return make_error(ErrorCode::invalid_argument, std::string("agent config: ") + key + " is required");
  };
  if (key.empty()) return missing("agent.key");
  if (server_public_key.empty()) return missing("aggregator.public_key");
  if (endpoint.empty()) return missing("aggregator.endpoint");
  if (train.empty()) return missing("data.images and data.labels (or data.csv)");
  if (auto status = check_source(train, "data"); !status) return status;
  if (auto status = check_source(held_out, "data.held_out"); !status) return status;
  if (shards == 0 || shard >= shards) {
    return make_error(ErrorCode::invalid_argument, "agent config: data.shard must be below data.shards");
  }
  if (debug.keep_updates && state_dir.empty()) {
    return make_error(ErrorCode::invalid_argument, "agent config: debug.keep_updates needs agent.state_dir");
  }
  if (eligibility.max_load_per_core < 0) {
    return make_error(ErrorCode::invalid_argument, "agent config: eligibility.max_load_per_core must be >= 0");
  }
  if (!release.repository.empty() && state_dir.empty()) {
    return make_error(ErrorCode::invalid_argument, "agent config: release.repository needs agent.state_dir");
  }
  if (serve.enabled) return validate_for_serving();
  return ok_status();
}

Result<AgentConfig> load_agent_config(const std::filesystem::path& path, AgentUse use) {
  auto file = config::ConfigFile::load(path);
  if (!file) return file.error();
  AgentConfig config;
  file->read("agent.name", config.name);
  file->read_path("agent.key", config.key);
  file->read_path("agent.state_dir", config.state_dir);
  file->read("aggregator.endpoint", config.endpoint);
  file->read_path("aggregator.public_key", config.server_public_key);
  file->read("model.name", config.model);
  file->read("model.device", config.device);
  file->read("model.threads", config.threads);
  read_source(*file, "data.", config.train);
  read_source(*file, "data.held_out.", config.held_out);
  file->read("data.shard", config.shard);
  file->read("data.shards", config.shards);
  file->read("eligibility.require_ac_power", config.eligibility.require_ac_power);
  file->read("eligibility.max_load_per_core", config.eligibility.max_load_per_core);
  read_place(*file, "release.repository", config.release.repository);
  read_place(*file, "release.targets_url", config.release.targets_url);
  file->read_path("release.trusted_root", config.release.trusted_root);
  file->read_path("release.ca_file", config.release.ca_file);
  if (!config.release.ca_file.empty() && !std::filesystem::is_regular_file(config.release.ca_file)) {
    file->fail("release.ca_file", config.release.ca_file.string() + " is not a file");
  }
  file->read("release.model", config.release.model);
  file->read("release.check_every_s", config.release.check_every_s);
  file->read("release.report_every_s", config.release.report_every_s);
  if (config.release.report_every_s < 0) file->fail("release.report_every_s", "must be 0 (never) or positive");
  read_serve(*file, config.serve);
  file->read("debug.keep_updates", config.debug.keep_updates);
  file->read("debug.hold_updates_from_round", config.debug.session.hold_updates_from_round);
  file->read("debug.zero_update", config.debug.zero_update);
  if (auto status = file->finish(); !status) return status.error();
  auto status = use == AgentUse::run ? config.validate() : config.validate_for_serving(use == AgentUse::models);
  if (!status) {
    return make_error(status.error().code, path.string() + ": " + status.error().message);
  }
  return config;
}

Result<Dataset> load_data_source(const DataSource& source) {
  if (!source.csv.empty()) return load_csv(source.csv);
  return load_idx(source.images, source.labels);
}

Dataset take_shard(const Dataset& data, std::size_t shard, std::size_t shards) {
  std::vector<std::size_t> indices;
  for (std::size_t i = shard; i < data.size(); i += shards) indices.push_back(i);
  return data.subset(indices);
}

}  // namespace shoal::client
