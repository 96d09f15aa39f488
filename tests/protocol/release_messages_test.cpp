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
