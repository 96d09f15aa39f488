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

}  // namespace

Result<MetricsLog> MetricsLog::open(const std::filesystem::path& path) {
  std::error_code error;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), error);
  std::ofstream out(path, std::ios::app);
  if (!out) return make_error(ErrorCode::io, path.string() + ": cannot open the metrics log for appending");
  return MetricsLog(path, std::move(out));
}

Status MetricsLog::append(const std::string& line) {
  out_ << line << '\n';
  out_.flush();
  if (!out_) return make_error(ErrorCode::io, path_.string() + ": cannot append to the metrics log");
  return ok_status();
}

Status MetricsLog::write_round(const RoundRecord& record, const RoundCosts& costs) {
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
      {"seconds", {{"round", record.seconds}, {"apply", record.apply_seconds}, {"checkpoint", costs.checkpoint_seconds}}},
      {"abandon_reason", record.applied ? nlohmann::json(nullptr) : nlohmann::json(record.abandon_reason)},
      {"secure", record.secure},
      {"clip_norm", record.clip_norm},
      {"privacy", record.delta > 0 ? nlohmann::json{{"epsilon", record.epsilon}, {"delta", record.delta}} : nlohmann::json(nullptr)},
      {"time", utc_now()}};
  return append(line.dump());
}

Status MetricsLog::write_evaluation(const EvaluationRecord& record) {
  nlohmann::json line = {{"event", "evaluation"},   {"round", record.round},       {"version", record.model_version},
                         {"asked", record.asked},     {"reported", record.reported}, {"samples", record.samples},
                         {"loss", record.loss},       {"accuracy", record.accuracy}, {"seconds", record.seconds},
                         {"time", utc_now()}};
  return append(line.dump());
}

}  // namespace shoal::aggregator
