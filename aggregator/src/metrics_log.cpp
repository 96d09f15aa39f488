#include "shoal/aggregator/metrics_log.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>

namespace shoal::aggregator {
namespace {

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

Result<std::ofstream> open_for_appending(const std::filesystem::path& path) {
  std::error_code error;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), error);
  std::ofstream out(path, std::ios::app);
  if (!out) return make_error(ErrorCode::io, path.string() + ": cannot open the metrics log for appending");
  return out;
}

}  // namespace

Result<MetricsLog> MetricsLog::open(const std::filesystem::path& path, MetricsOptions options) {
  auto out = open_for_appending(path);
  if (!out) return out.error();
  std::optional<Output> wall_clock;
  if (!options.wall_clock_log.empty()) {
    auto wall = open_for_appending(options.wall_clock_log);
    if (!wall) return wall.error();
    wall_clock = Output{options.wall_clock_log, std::move(wall).value()};
  }
  return MetricsLog(Output{path, std::move(out).value()}, std::move(wall_clock));
}

Status MetricsLog::append(Output& output, const std::string& line) {
  output.out << line << '\n';
  output.out.flush();
  if (!output.out) return make_error(ErrorCode::io, output.path.string() + ": cannot append to the metrics log");
  return ok_status();
}

Status MetricsLog::write_line(const std::string& json) { return append(main_, json); }

Status MetricsLog::write_round(const RoundRecord& record, const RoundCosts& costs, double start_s) {
  nlohmann::json line = {
      {"event", "round"},
      {"round", record.round},
      {"version", record.version_after},
      {"applied", record.applied},
      {"cohort", record.cohort},
      {"reported", record.reported},
      {"stragglers", record.stragglers},
      {"dropped", record.dropped},
      {"rejected", record.rejected},
      {"samples", record.samples},
      {"train_loss", record.mean_loss_after},
      {"train_accuracy", record.mean_accuracy_after},
      {"bytes_in", costs.bytes_in},
      {"bytes_out", costs.bytes_out},
      {"abandon_reason", record.applied ? nlohmann::json(nullptr) : nlohmann::json(record.abandon_reason)},
      {"secure", record.secure},
      {"clip_norm", record.clip_norm},
      {"privacy", record.delta > 0 ? nlohmann::json{{"epsilon", record.epsilon}, {"delta", record.delta}} : nlohmann::json(nullptr)}};
  nlohmann::json phases = nlohmann::json::object();
  for (const auto& phase : record.phases) phases[phase.phase] = {{"closed", phase.seconds}, {"members", phase.members}};
  line["timeline"] = {{"start", start_s}, {"phases", std::move(phases)}};
  const nlohmann::json wall = {{"apply", record.apply_seconds}, {"checkpoint", costs.checkpoint_seconds}};
  if (wall_clock_) {
    line["seconds"] = {{"round", record.seconds}};
    if (auto status = append(main_, line.dump()); !status) return status;
    return append(*wall_clock_, nlohmann::json{{"event", "round"}, {"round", record.round}, {"seconds", wall},
                                               {"time", utc_now()}}
                                    .dump());
  }
  line["seconds"] = {{"round", record.seconds}, {"apply", record.apply_seconds}, {"checkpoint", costs.checkpoint_seconds}};
  line["time"] = utc_now();
  return append(main_, line.dump());
}

Status MetricsLog::write_evaluation(const EvaluationRecord& record) {
  nlohmann::json line = {{"event", "evaluation"},   {"round", record.round},       {"version", record.model_version},
                         {"asked", record.asked},     {"reported", record.reported}, {"samples", record.samples},
                         {"loss", record.loss},       {"accuracy", record.accuracy}, {"seconds", record.seconds}};
  if (!wall_clock_) line["time"] = utc_now();
  return append(main_, line.dump());
}

}  // namespace shoal::aggregator
