#include "shoal/protocol/release_messages.h"

#include "assign_field.h"

namespace shoal::protocol {

using detail::assign;

void FetchFile::write(HeaderWriter& header) const {
  header.put("request", request).put("path", path).put("offset", offset).put("max_bytes", max_bytes);
}

Decoded<FetchFile> FetchFile::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  FetchFile fetch{};
  if (auto e = assign(fetch.request, fields.get_uint("request"))) return *e;
  if (auto e = assign(fetch.path, fields.get_string("path"))) return *e;
  if (auto e = assign(fetch.offset, fields.get_uint("offset"))) return *e;
  if (auto e = assign(fetch.max_bytes, fields.get_uint("max_bytes"))) return *e;
  if (fetch.path.empty() || fetch.path.size() > 1024) {
    return DecodeError{DecodeFault::invalid_value, "path", "must be 1 to 1024 bytes"};
  }
  if (fetch.max_bytes < 1 || fetch.max_bytes > kFileChunkBytes) {
    return DecodeError{DecodeFault::invalid_value, "max_bytes", "must be in [1, 1048576]"};
  }
  return fetch;
}

void FileChunk::write(HeaderWriter& header) const {
  header.put("request", request)
      .put("status", status)
      .put("detail", detail)
      .put("offset", offset)
      .put("total_size", total_size);
}

Decoded<FileChunk> FileChunk::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  FileChunk chunk{};
  if (auto e = assign(chunk.request, fields.get_uint("request"))) return *e;
  if (auto e = assign(chunk.status, fields.get_string("status"))) return *e;
  if (auto e = assign(chunk.detail, fields.get_string("detail"))) return *e;
  if (auto e = assign(chunk.offset, fields.get_uint("offset"))) return *e;
  if (auto e = assign(chunk.total_size, fields.get_uint("total_size"))) return *e;
  if (chunk.status != "ok" && chunk.status != "not_found" && chunk.status != "refused") {
    return DecodeError{DecodeFault::invalid_value, "status", "must be ok, not_found or refused"};
  }
  if (chunk.status == "ok" && envelope.payload_count() != 1) {
    return DecodeError{DecodeFault::invalid_value, "payload", "an ok chunk carries its bytes"};
  }
  if (chunk.status == "ok" &&
      (chunk.offset > chunk.total_size || envelope.payload(0).size() > chunk.total_size - chunk.offset)) {
    return DecodeError{DecodeFault::invalid_value, "offset", "the chunk ends past the file's size"};
  }
  return chunk;
}

void HealthReport::write(HeaderWriter& header) const {
  header.put("model", model)
      .put("event", event)
      .put("active_version", active_version)
      .put("previous_version", previous_version)
      .put("attempted_version", attempted_version)
      .put("failed_step", failed_step)
      .put("smoke_test", smoke_test)
      .put("inference_errors", inference_errors)
      .put("accuracy", accuracy)
      .put("accuracy_samples", accuracy_samples);
}

Decoded<HealthReport> HealthReport::read(const Envelope& envelope) {
  const auto& fields = envelope.header();
  HealthReport report{};
  if (auto e = assign(report.model, fields.get_string("model"))) return *e;
  if (auto e = assign(report.event, fields.get_string("event"))) return *e;
  if (auto e = assign(report.active_version, fields.get_uint("active_version"))) return *e;
  if (auto e = assign(report.previous_version, fields.get_uint("previous_version"))) return *e;
  if (auto e = assign(report.attempted_version, fields.get_uint("attempted_version"))) return *e;
  if (auto e = assign(report.failed_step, fields.get_string("failed_step"))) return *e;
  if (auto e = assign(report.smoke_test, fields.get_string("smoke_test"))) return *e;
  if (auto e = assign(report.inference_errors, fields.get_uint("inference_errors"))) return *e;
  if (auto e = assign(report.accuracy, fields.get_double("accuracy"))) return *e;
  if (auto e = assign(report.accuracy_samples, fields.get_uint("accuracy_samples"))) return *e;
  if (report.model.empty() || report.model.size() > 64) {
    return DecodeError{DecodeFault::invalid_value, "model", "must be 1 to 64 bytes"};
  }
  if (report.event != "install" && report.event != "rollback" && report.event != "periodic") {
    return DecodeError{DecodeFault::invalid_value, "event", "must be install, rollback or periodic"};
  }
  if (report.smoke_test != "not_run" && report.smoke_test != "passed" && report.smoke_test != "failed") {
    return DecodeError{DecodeFault::invalid_value, "smoke_test", "must be not_run, passed or failed"};
  }
  if (report.failed_step.size() > 64) {
    return DecodeError{DecodeFault::invalid_value, "failed_step", "must be at most 64 bytes"};
  }
  if (!(report.accuracy >= 0.0 && report.accuracy <= 1.0)) {
    return DecodeError{DecodeFault::invalid_value, "accuracy", "must be in [0, 1]"};
  }
  return report;
}

}  // namespace shoal::protocol
