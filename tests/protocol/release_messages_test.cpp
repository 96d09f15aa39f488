#include "shoal/protocol/release_messages.h"

#include <catch2/catch.hpp>

using namespace shoal::protocol;

namespace {

template <typename M>
Decoded<M> round_trip(const M& message, std::vector<zmq::message_t> payloads = {}) {
  auto envelope = decode_envelope(encode(message, std::move(payloads)), Limits{});
  REQUIRE(envelope);
  return decode<M>(*envelope);
}

std::vector<zmq::message_t> bytes(std::size_t count) {
  std::vector<zmq::message_t> frames;
  frames.emplace_back(std::string(count, 'x'));
  return frames;
}

}  // namespace

TEST_CASE("release fetch messages round-trip every field") {
  auto fetch = round_trip(FetchFile{7, "targets/cnn/v3.weights", 1 << 20, 4096});
  REQUIRE(fetch);
  CHECK(fetch->request == 7);
  CHECK(fetch->path == "targets/cnn/v3.weights");
  CHECK(fetch->offset == 1 << 20);
  CHECK(fetch->max_bytes == 4096);

  auto chunk = round_trip(FileChunk{7, "ok", "", 10, 15}, bytes(5));
  REQUIRE(chunk);
  CHECK(chunk->status == "ok");
  CHECK(chunk->offset == 10);
  CHECK(chunk->total_size == 15);

  auto missing = round_trip(FileChunk{8, "not_found", "no such file", 0, 0});
  REQUIRE(missing);
  CHECK(missing->detail == "no such file");
}

TEST_CASE("release fetch messages out of range are refused with the field named") {
  CHECK(round_trip(FetchFile{1, "", 0, 10}).error().field == "path");
  CHECK(round_trip(FetchFile{1, "metadata/root.json", 0, 0}).error().field == "max_bytes");
  CHECK(round_trip(FetchFile{1, "metadata/root.json", 0, kFileChunkBytes + 1}).error().field == "max_bytes");
  CHECK(round_trip(FileChunk{1, "maybe", "", 0, 0}).error().field == "status");
  CHECK(round_trip(FileChunk{1, "ok", "", 0, 10}).error().field == "payload");
  CHECK(round_trip(FileChunk{1, "ok", "", 8, 10}, bytes(5)).error().field == "offset");
  CHECK(round_trip(FileChunk{1, "ok", "", ~std::uint64_t{0}, 10}, bytes(5)).error().field == "offset");
}

TEST_CASE("a health report round-trips, and out-of-range fields are refused by name") {
  const HealthReport sent{"cnn", "install", 12, 11, 12, "smoke test", "failed", 3, 0.0, 0};
  auto report = round_trip(sent);
  REQUIRE(report);
  CHECK(report->model == "cnn");
  CHECK(report->event == "install");
  CHECK(report->active_version == 12);
  CHECK(report->previous_version == 11);
  CHECK(report->attempted_version == 12);
  CHECK(report->failed_step == "smoke test");
  CHECK(report->smoke_test == "failed");
  CHECK(report->inference_errors == 3);
  CHECK(report->accuracy_samples == 0);

  auto refused_field = [&](HealthReport bad) {
    auto decoded = round_trip(bad);
    REQUIRE_FALSE(decoded);
    return decoded.error().field;
  };
  HealthReport bad = sent;
  bad.event = "reboot";
  CHECK(refused_field(bad) == "event");
  bad = sent;
  bad.smoke_test = "maybe";
  CHECK(refused_field(bad) == "smoke_test");
  bad = sent;
  bad.accuracy = 1.5;
  CHECK(refused_field(bad) == "accuracy");
  bad = sent;
  bad.model = "";
  CHECK(refused_field(bad) == "model");
  bad = sent;
  bad.failed_step = std::string(65, 'x');
  CHECK(refused_field(bad) == "failed_step");
}
