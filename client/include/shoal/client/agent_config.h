// The settings of `shoal-agent run`, read from its TOML file
// (configs/agent-1.toml documents every key).
#pragma once

#include <filesystem>
#include <string>

#include "shoal/client/agent.h"
#include "shoal/client/dataset.h"
#include "shoal/config/config_file.h"
#include "shoal/serving/inference_service.h"

namespace shoal::client {

// A local data source: IDX images + labels, or a CSV file.
struct DataSource {
  std::filesystem::path images, labels, csv;
  bool empty() const { return images.empty() && csv.empty(); }
};

// Where the agent gets model releases (shoal-release repositories).
struct ReleaseSettings {
  std::string repository;               // directory; empty: no releases
  std::filesystem::path trusted_root;   // the operator's root.json, trusted on the first update
  std::filesystem::path ca_file;        // CAs for an https repository; empty: the system's
  std::string targets_url;              // where the repository's targets/ is served from; empty: the repository
  std::string model;                    // the model's name in the repository; empty: model.name
  int check_every_s = 3600;             // how often `run` checks; 0: only `shoal-agent update`
  int report_every_s = 3600;            // how often `run` sends a health report besides those after installs; 0: never
};

// Which of the device's models the local inference service answers from.
enum class ServeSource {
  release,        // the active release: signed, verified and smoke-tested (the default)
  latest_global,  // the latest global model from rounds (<state_dir>/model.weights)
};

// [serve]: the local inference service (serving/). On when the section sets a port.
struct ServeSettings {
  bool enabled = false;
  ServeSource source = ServeSource::release;
  std::string name;                  // the model's name in requests; empty: the zoo name or the file's stem
  std::filesystem::path token_file;  // a bearer token apps must send (mode 0600); empty: none
  serving::ServiceOptions service;   // host, port, limits and batching
};

struct AgentConfig {
  std::string name = "agent";
  std::filesystem::path key;  // the device's secret key file
  std::filesystem::path state_dir;
  std::string endpoint = "tcp://127.0.0.1:7400";
  std::filesystem::path server_public_key;
  std::string model = "cnn";  // zoo name or TorchScript file
  std::string device = "auto";
  int threads = 0;
  DataSource train;
  DataSource held_out;  // empty: evaluate on the training data
  // Use every shards-th sample starting at `shard`, so several agents on one
  // machine can split one dataset (a demo); 1 shard is the whole dataset.
  std::size_t shard = 0;
  std::size_t shards = 1;
  EligibilityRules eligibility;
  ReleaseSettings release;
  ServeSettings serve;
  AgentFaults debug;  // [debug]: fault injection for tests and benchmarks (fault_injection.h)

  // What `shoal-agent run` needs.
  Status validate() const;
  // What `shoal-agent serve --config` needs: a state directory and a [serve]
  // section; `models_only` (`update`, an app linking the agent) needs no [serve].
  Status validate_for_serving(bool models_only = false) const;
};

enum class AgentUse {
  run,         // rounds, serving and release checks: `shoal-agent run`
  serve,       // serving over HTTP and release checks: `shoal-agent serve --config`
  models,      // the device's models only, HTTP only with [serve]: `shoal-agent update`, the C API
};
Result<AgentConfig> load_agent_config(const std::filesystem::path& path, AgentUse use = AgentUse::run);

// Loads a data source; errors name the files.
Result<Dataset> load_data_source(const DataSource& source);
// The samples of shard `shard` of `shards` (every shards-th, from `shard`).
Dataset take_shard(const Dataset& data, std::size_t shard, std::size_t shards);

}  // namespace shoal::client
