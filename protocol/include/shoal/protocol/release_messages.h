// The messages that let a device read the release repository its
// aggregator serves, over the same CurveZMQ connection as rounds: a device
// asks for a byte range of a repository file, the server answers with it
// and the file's size. The device's TUF client checks everything it gets;
// the server is trusted for nothing but availability.
//
// A device also reports its health after each install or rollback and
// every report_every_s, for staged rollouts (updater/rollout_health.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "shoal/protocol/messages.h"

namespace shoal::protocol {

// The most a FileChunk carries (1 MiB): a file arrives in chunks this size.
inline constexpr std::uint64_t kFileChunkBytes = std::uint64_t{1} << 20;

// Device -> server: bytes [offset, offset + max_bytes) of a repository file.
struct FetchFile {
  static constexpr MessageType kType = MessageType::fetch_file;
  static constexpr std::size_t kMaxPayloads = 0;

  std::uint64_t request;    // echoed in the answer
  std::string path;         // "metadata/timestamp.json", "targets/cnn/v3.weights"
  std::uint64_t offset;
  std::uint64_t max_bytes;  // 1 .. kFileChunkBytes

  void write(HeaderWriter& header) const;
  static Decoded<FetchFile> read(const Envelope& envelope);
};

// Server -> device: the answer to a FetchFile, with the bytes as its one
// payload frame when status is "ok".
struct FileChunk {
  static constexpr MessageType kType = MessageType::file_chunk;
  static constexpr std::size_t kMaxPayloads = 1;

  std::uint64_t request;
  std::string status;           // "ok", "not_found" or "refused"
  std::string detail;           // why, when not ok
  std::uint64_t offset;
  std::uint64_t total_size;     // the whole file's size

  void write(HeaderWriter& header) const;
  static Decoded<FileChunk> read(const Envelope& envelope);
};

// Device -> server: the device's release health.
struct HealthReport {
  static constexpr MessageType kType = MessageType::health_report;
  static constexpr std::size_t kMaxPayloads = 0;

  std::string model;
  std::string event;                  // "install", "rollback" or "periodic"
  std::uint64_t active_version;
  std::uint64_t previous_version;     // 0: none
  std::uint64_t attempted_version;    // the last install's version; 0: none since the last report
  std::string failed_step;            // of that install; empty: it succeeded
  std::string smoke_test;             // "not_run", "passed" or "failed"
  std::uint64_t inference_errors;     // since the last report
  double accuracy;                    // of the active model on held-out data, in [0, 1]
  std::uint64_t accuracy_samples;     // 0: no accuracy measured

  void write(HeaderWriter& header) const;
  static Decoded<HealthReport> read(const Envelope& envelope);
};

}  // namespace shoal::protocol
