// The aggregator's metrics log: one JSON object per line, appended and
// flushed as each round or evaluation finishes, for dashboards and scripts.
//
//   {"event":"round","round":3,"version":3,"applied":true,"cohort":5,
//    "reported":4,"stragglers":0,"dropped":1,"rejected":0,"samples":12000,
//    "train_loss":0.61,"train_accuracy":0.78,"bytes_in":3212044,
//    "bytes_out":4011960,"seconds":{"round":4.2,"apply":0.01,"checkpoint":0.03},
//    "abandon_reason":null,"time":"2026-11-25T10:00:00Z"}
//   {"event":"evaluation","round":3,"version":3,"asked":5,"reported":5,
//    "samples":5000,"loss":0.55,"accuracy":0.81,"seconds":0.9,"time":"..."}
//
// bytes_in/bytes_out count every frame since the previous round line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "shoal/aggregator/round_coordinator.h"

namespace shoal::aggregator {

struct RoundCosts {
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  double checkpoint_seconds = 0;
};

class MetricsLog {
 public:
  // Opens `path` for appending, creating it and its directory if needed.
  static Result<MetricsLog> open(const std::filesystem::path& path);

  Status write_round(const RoundRecord& record, const RoundCosts& costs);
  Status write_evaluation(const EvaluationRecord& record);

 private:
  MetricsLog(std::filesystem::path path, std::ofstream out) : path_(std::move(path)), out_(std::move(out)) {}
  Status append(const std::string& line);

  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace shoal::aggregator
