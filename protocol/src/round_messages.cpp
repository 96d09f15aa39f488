#include "shoal/protocol/round_messages.h"

#include <algorithm>
#include <cmath>

#include "assign_field.h"

namespace shoal::protocol {
namespace {

using detail::assign;

constexpr std::uint64_t kMaxEpochs = 10'000;

std::optional<DecodeError> check(bool ok, const char* field, const char* rule) {
  if (ok) return std::nullopt;
  return DecodeError{DecodeFault::invalid_value, field, rule};
}

std::optional<DecodeError> check_fraction(double value, const char* field) {
  return check(value >= 0.0 && value <= 1.0, field, "must be in [0, 1]");
}

std::optional<DecodeError> check_finite(double value, const char* field) {
  return check(std::isfinite(value), field, "must be finite");
}

}  // namespace

std::optional<DecodeError> WirePlan::check() const {
  if (auto e = protocol::check(epochs >= 1 && epochs <= kMaxEpochs, "epochs", "must be in [1, 10000]")) return e;
  if (auto e = protocol::check(batch_size >= 1, "batch_size", "must be positive")) return e;
  if (auto e = protocol::check(learning_rate > 0 && std::isfinite(learning_rate), "learning_rate", "must be positive")) {
    return e;
  }
  if (auto e = protocol::check(momentum >= 0 && momentum < 1, "momentum", "must be in [0, 1)")) return e;
  if (auto e = protocol::check(weight_decay >= 0 && std::isfinite(weight_decay), "weight_decay", "must be >= 0")) {
    return e;
  }
  return protocol::check(proximal_mu >= 0 && std::isfinite(proximal_mu), "proximal_mu", "must be >= 0");
}

std::optional<DecodeError> PrivacyPlan::check() const {
  if (auto e = protocol::check(clip_norm >= 0 && std::isfinite(clip_norm), "privacy.clip_norm", "must be >= 0")) return e;
  if (auto e = protocol::check(noise_stddev >= 0 && std::isfinite(noise_stddev), "privacy.noise_stddev", "must be >= 0")) {
    return e;
  }
  if (auto e = protocol::check(count_noise_stddev >= 0 && std::isfinite(count_noise_stddev), "privacy.count_noise_stddev",
                               "must be >= 0")) {
    return e;
  }
  return protocol::check(weight_cap >= 1, "privacy.weight_cap", "must be positive");
}

void TrainTask::write(HeaderWriter& header) const {
  header.put("round", round)
      .put("model_version", model_version)
      .put("deadline_ms", deadline_ms)
      .put("epochs", plan.epochs)
      .put("batch_size", plan.batch_size)
      .put("learning_rate", plan.learning_rate)
      .put("momentum", plan.momentum)
      .put("weight_decay", plan.weight_decay)
      .put("proximal_mu", plan.proximal_mu)
      .put("seed", plan.seed)
      .put_bytes("model_hash", model_hash);
  HeaderWriter privacy_map;
  privacy_map.put("clip_norm", privacy.clip_norm)
      .put("noise_stddev", privacy.noise_stddev)
      .put("count_noise_stddev", privacy.count_noise_stddev)
      .put("weight_cap", privacy.weight_cap)
      .put("uniform_weights", privacy.uniform_weights);
  header.put_map("privacy", privacy_map);
  if (secure) {
    HeaderWriter secure_map;
    secure_map.put_bytes("nonce", secure->nonce)
        .put("threshold", secure->threshold)
        .put("bits", secure->bits)
        .put("scale", secure->scale)
        .put("range", secure->range);
    header.put_map("secure", secure_map);
  }
  if (!local_tensors.empty()) header.put("local_tensors", std::span<const std::uint64_t>(local_tensors));
}

Decoded<TrainTask> TrainTask::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  TrainTask task{};
  auto& plan = task.plan;
  if (auto e = assign(task.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(task.model_version, fields.get_uint("model_version"))) return *e;
  if (auto e = assign(task.deadline_ms, fields.get_uint("deadline_ms"))) return *e;
  if (auto e = assign(plan.epochs, fields.get_uint("epochs"))) return *e;
  if (auto e = assign(plan.batch_size, fields.get_uint("batch_size"))) return *e;
  if (auto e = assign(plan.learning_rate, fields.get_double("learning_rate"))) return *e;
  if (auto e = assign(plan.momentum, fields.get_double("momentum"))) return *e;
  if (auto e = assign(plan.weight_decay, fields.get_double("weight_decay"))) return *e;
  if (auto e = assign(plan.proximal_mu, fields.get_double("proximal_mu"))) return *e;
  if (auto e = assign(plan.seed, fields.get_uint("seed"))) return *e;
  auto hash = fields.get_bytes("model_hash");
  if (!hash) return hash.error();
  if (hash->size() != task.model_hash.size()) return DecodeError{DecodeFault::invalid_value, "model_hash", "must be 32 bytes"};
  std::copy(hash->begin(), hash->end(), task.model_hash.begin());
  auto privacy = fields.get_map("privacy");
  if (!privacy) return privacy.error();
  if (auto e = assign(task.privacy.clip_norm, privacy->get_double("clip_norm"))) return *e;
  if (auto e = assign(task.privacy.noise_stddev, privacy->get_double("noise_stddev"))) return *e;
  if (auto e = assign(task.privacy.count_noise_stddev, privacy->get_double("count_noise_stddev"))) return *e;
  if (auto e = assign(task.privacy.weight_cap, privacy->get_uint("weight_cap"))) return *e;
  if (auto e = assign(task.privacy.uniform_weights, privacy->get_bool("uniform_weights"))) return *e;
  if (fields.has("secure")) {
    auto secure = fields.get_map("secure");
    if (!secure) return secure.error();
    SecureParams params;
    auto nonce = secure->get_bytes("nonce");
    if (!nonce) return nonce.error();
    if (nonce->size() != params.nonce.size()) return DecodeError{DecodeFault::invalid_value, "secure.nonce", "must be 32 bytes"};
    std::copy(nonce->begin(), nonce->end(), params.nonce.begin());
    if (auto e = assign(params.threshold, secure->get_uint("threshold"))) return *e;
    if (auto e = assign(params.bits, secure->get_uint("bits"))) return *e;
    if (auto e = assign(params.scale, secure->get_double("scale"))) return *e;
    if (auto e = assign(params.range, secure->get_double("range"))) return *e;
    if (auto e = params.check()) return *e;
    task.secure = params;
  }
  if (fields.has("local_tensors")) {
    auto local = fields.get_uint_array("local_tensors");
    if (!local) return local.error();
    task.local_tensors = std::move(local).value();
    if (auto e = check(std::is_sorted(task.local_tensors.begin(), task.local_tensors.end()) &&
                           std::adjacent_find(task.local_tensors.begin(), task.local_tensors.end()) ==
                               task.local_tensors.end(),
                       "local_tensors", "must be ascending, each index once")) {
      return *e;
    }
  }
  if (auto e = check(task.deadline_ms > 0, "deadline_ms", "must be positive")) return *e;
  if (auto e = plan.check()) return *e;
  if (auto e = task.privacy.check()) return *e;
  return task;
}

void UpdateReport::write(HeaderWriter& header) const {
  header.put("round", round)
      .put("base_version", base_version)
      .put("samples", samples)
      .put("loss_before", loss_before)
      .put("accuracy_before", accuracy_before)
      .put("loss_after", loss_after)
      .put("accuracy_after", accuracy_after)
      .put("offset", offset)
      .put("unclipped", unclipped);
}

Decoded<UpdateReport> UpdateReport::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  UpdateReport report{};
  if (auto e = assign(report.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(report.base_version, fields.get_uint("base_version"))) return *e;
  if (auto e = assign(report.samples, fields.get_uint("samples"))) return *e;
  if (auto e = assign(report.loss_before, fields.get_double("loss_before"))) return *e;
  if (auto e = assign(report.accuracy_before, fields.get_double("accuracy_before"))) return *e;
  if (auto e = assign(report.loss_after, fields.get_double("loss_after"))) return *e;
  if (auto e = assign(report.accuracy_after, fields.get_double("accuracy_after"))) return *e;
  if (auto e = assign(report.offset, fields.get_uint("offset"))) return *e;
  if (fields.has("unclipped")) {
    if (auto e = assign(report.unclipped, fields.get_bool("unclipped"))) return *e;
  }
  if (auto e = check(report.samples > 0, "samples", "must be positive")) return *e;
  if (auto e = check_finite(report.loss_before, "loss_before")) return *e;
  if (auto e = check_finite(report.loss_after, "loss_after")) return *e;
  if (auto e = check_fraction(report.accuracy_before, "accuracy_before")) return *e;
  if (auto e = check_fraction(report.accuracy_after, "accuracy_after")) return *e;
  static_assert(kUpdatePartValues == 262144, "the rule below names the part size");
  if (auto e = check(report.offset % kUpdatePartValues == 0, "offset", "must be a multiple of 262144 (a part's values)")) {
    return *e;
  }
  if (envelope.payload_count() != 1) {
    return DecodeError{DecodeFault::missing_frame, "update", "an update report carries its part of the update as one payload frame"};
  }
  return report;
}

void EvaluateTask::write(HeaderWriter& header) const {
  header.put("round", round).put("model_version", model_version).put("deadline_ms", deadline_ms);
}

Decoded<EvaluateTask> EvaluateTask::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  EvaluateTask task{};
  if (auto e = assign(task.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(task.model_version, fields.get_uint("model_version"))) return *e;
  if (auto e = assign(task.deadline_ms, fields.get_uint("deadline_ms"))) return *e;
  if (auto e = check(task.deadline_ms > 0, "deadline_ms", "must be positive")) return *e;
  return task;
}

void EvaluationReport::write(HeaderWriter& header) const {
  header.put("round", round)
      .put("model_version", model_version)
      .put("samples", samples)
      .put("loss", loss)
      .put("accuracy", accuracy);
}

Decoded<EvaluationReport> EvaluationReport::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  EvaluationReport report{};
  if (auto e = assign(report.round, fields.get_uint("round"))) return *e;
  if (auto e = assign(report.model_version, fields.get_uint("model_version"))) return *e;
  if (auto e = assign(report.samples, fields.get_uint("samples"))) return *e;
  if (auto e = assign(report.loss, fields.get_double("loss"))) return *e;
  if (auto e = assign(report.accuracy, fields.get_double("accuracy"))) return *e;
  if (auto e = check(report.samples > 0, "samples", "must be positive")) return *e;
  if (auto e = check_finite(report.loss, "loss")) return *e;
  if (auto e = check_fraction(report.accuracy, "accuracy")) return *e;
  return report;
}

}  // namespace shoal::protocol
