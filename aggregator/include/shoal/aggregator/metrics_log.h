// The aggregator's metrics log: one JSON object per line, appended and
// flushed as each round or evaluation finishes, for dashboards and scripts.
//
//   {"event":"round","round":3,"version":3,"applied":true,"cohort":5,
//    "reported":4,"stragglers":0,"dropped":1,"rejected":0,"samples":12000,
//    "train_loss":0.61,"train_accuracy":0.78,"bytes_in":3212044,
//    "bytes_out":4011960,"seconds":{"round":4.2,"apply":0.01,"checkpoint":0.03},
//    "timeline":{"start":120.5,"phases":{"training":{"closed":4.2,"members":4}}},
//    "abandon_reason":null,"time":"2026-11-25T10:00:00Z"}
//   {"event":"evaluation","round":3,"version":3,"asked":5,"reported":5,
//    "samples":5000,"loss":0.55,"accuracy":0.81,"seconds":0.9,"time":"..."}
//
// bytes_in/bytes_out count every frame since the previous round line. The
// timeline gives when the round started (seconds after the server's, or a
// simulation's, start), and for each phase when it closed (seconds after
// the round started) and how many cohort members were left in the round. With MetricsOptions::wall_clock_log set, the fields that read
// the wall clock ("time", seconds "apply" and "checkpoint") go to that file
// instead, one line per round, so that a simulation repeated with the same
// seed writes the same metrics log byte for byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "shoal/aggregator/round_coordinator.h"

namespace shoal::aggregator {

struct RoundCosts {
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  double checkpoint_seconds = 0;
};

struct MetricsOptions {
  std::filesystem::path wall_clock_log;  // empty: wall-clock fields stay in the metrics log's lines
};

class MetricsLog {
 public:
  // Opens `path` (and the wall-clock log, if any) for appending, creating
  // them and their directory if needed.
  static Result<MetricsLog> open(const std::filesystem::path& path, MetricsOptions options = {});

  // `start_s`: when the round started, in seconds after the origin.
  Status write_round(const RoundRecord& record, const RoundCosts& costs, double start_s);
  Status write_evaluation(const EvaluationRecord& record);
  // Any other event, as one line of JSON (the simulator's test-set results).
  Status write_line(const std::string& json);

 private:
  struct Output {
    std::filesystem::path path;
    std::ofstream out;
  };
  MetricsLog(Output main, std::optional<Output> wall_clock) : main_(std::move(main)), wall_clock_(std::move(wall_clock)) {}
  static Status append(Output& output, const std::string& line);

  Output main_;
  std::optional<Output> wall_clock_;
};

}  // namespace shoal::aggregator
