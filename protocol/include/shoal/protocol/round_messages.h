// The messages of a training round. The server sends a task to each device
// of the cohort; the device answers with its update or its evaluation.
//
// A task carries the model as one payload frame (a weights file, see
// weights_file.h) only when the device's copy is behind the round's version.
// An update travels as consecutive parts, each an UpdateReport whose one
// payload frame holds kUpdatePartValues float32 little-endian values (the
// last part the rest), so the aggregator folds each part as it arrives and
// never holds a whole update. Decoders check field types and value ranges;
// frame contents are checked by the receiver, which knows the model.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "shoal/protocol/messages.h"
#include "shoal/protocol/secagg_messages.h"

namespace shoal::protocol {

// The local-training plan, as sent in a task.
struct WirePlan {
  std::uint64_t epochs = 1;
  std::uint64_t batch_size = 32;
  double learning_rate = 0.01;
  double momentum = 0;
  double weight_decay = 0;
  double proximal_mu = 0;
  std::uint64_t seed = 0;

  // The first field out of range (invalid_value, with the field and its
  // rule), or nullopt. Decoding a task and loading a server config both use it.
  std::optional<DecodeError> check() const;
};

// What a device does to its update before it leaves: clip its L2 norm,
// weigh it, add its share of Gaussian noise.
struct PrivacyPlan {
  double clip_norm = 0;          // 0: no clipping
  double noise_stddev = 0;       // per value, added by the device (distributed DP); 0: none
  double count_noise_stddev = 0; // secure mode: on the "not clipped" indicator (adaptive clipping)
  std::uint64_t weight_cap = 1;  // secure mode: weight = min(samples, cap) / cap
  bool uniform_weights = false;  // every update weighs the same (DP rounds)

  std::optional<DecodeError> check() const;
};

// Server -> device: train on local data from `model_version` and report.
// The device checks that the model it holds has `model_hash`
// (BLAKE2b-256 of its values, updater::values_hash); in secure mode
// (`secure` set) it answers with the phases of secagg_messages.h instead of
// an UpdateReport.
struct TrainTask {
  static constexpr MessageType kType = MessageType::train_task;
  static constexpr std::size_t kMaxPayloads = 1;  // the model, when the device is behind

  std::uint64_t round;
  std::uint64_t model_version;
  std::uint64_t deadline_ms;  // how long the device has before its update is late
  WirePlan plan;
  std::array<std::uint8_t, 32> model_hash{};
  PrivacyPlan privacy{};
  std::optional<SecureParams> secure{};
  // FedBN: indices (ascending) of the layout's tensors that stay on each
  // device. The device trains with its own values of them and sends zeros
  // in their place. Absent from the header when empty.
  std::vector<std::uint64_t> local_tensors{};

  void write(HeaderWriter& header) const;
  static Decoded<TrainTask> read(const Envelope& envelope);
};

// Values in each part of an update (1 MiB of float32) but the last.
inline constexpr std::size_t kUpdatePartValues = std::size_t{1} << 18;

// Device -> server: one part of the update for `round`, trained from
// `base_version`: values [offset, offset + payload values). Every part
// repeats the report's fields.
struct UpdateReport {
  static constexpr MessageType kType = MessageType::update_report;
  static constexpr std::size_t kMaxPayloads = 1;  // required: the part's values

  std::uint64_t round;
  std::uint64_t base_version;
  std::uint64_t samples;  // the update's weight in the mean
  double loss_before;
  double accuracy_before;
  double loss_after;
  double accuracy_after;
  std::uint64_t offset = 0;  // index of the part's first value; a multiple of kUpdatePartValues
  bool unclipped = true;     // the update was within the round's clip norm (adaptive clipping)

  void write(HeaderWriter& header) const;
  static Decoded<UpdateReport> read(const Envelope& envelope);
};

// Server -> device: evaluate `model_version` on local held-out data.
struct EvaluateTask {
  static constexpr MessageType kType = MessageType::evaluate_task;
  static constexpr std::size_t kMaxPayloads = 1;  // the model, when the device is behind

  std::uint64_t round;
  std::uint64_t model_version;
  std::uint64_t deadline_ms;

  void write(HeaderWriter& header) const;
  static Decoded<EvaluateTask> read(const Envelope& envelope);
};

// Device -> server: loss and accuracy of `model_version` on `samples` held-out samples.
struct EvaluationReport {
  static constexpr MessageType kType = MessageType::evaluation_report;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t round;
  std::uint64_t model_version;
  std::uint64_t samples;
  double loss;
  double accuracy;

  void write(HeaderWriter& header) const;
  static Decoded<EvaluationReport> read(const Envelope& envelope);
};

}  // namespace shoal::protocol
