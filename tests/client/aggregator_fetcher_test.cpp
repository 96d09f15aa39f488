// The aggregator fetcher against a hand-driven server socket over real
// CurveZMQ: a file arrives in chunks, a missing one is not_found, and a file
// over the caller's cap is refused after the first chunk says its size.
#include "shoal/client/aggregator_fetcher.h"

#include <catch2/catch.hpp>

#include <thread>

#include "hand_driven_server.h"
#include "shoal/protocol/release_messages.h"

using namespace shoal;
using namespace std::chrono_literals;
using shoal::testing::HandDrivenServer;
using shoal::testing::next_of_type;

TEST_CASE("the aggregator fetcher assembles chunks, reports a missing file and refuses one over its cap") {
  HandDrivenServer server;
  const std::size_t size = 2 * protocol::kFileChunkBytes + 12345;
  std::string file(size, '\0');
  for (std::size_t i = 0; i < size; ++i) file[i] = static_cast<char>(i * 7 % 251);

  // Answers `count` requests: the file at "targets/big", nothing else.
  std::vector<protocol::FetchFile> requests;
  auto serve = [&](int count) {
    for (int i = 0; i < count; ++i) {
      auto message = next_of_type(server.router, protocol::MessageType::fetch_file);
      auto fetch = protocol::decode<protocol::FetchFile>(*message.message);
      REQUIRE(fetch);
      requests.push_back(*fetch);
      std::vector<zmq::message_t> payload;
      protocol::FileChunk chunk{fetch->request, "not_found", "no such file", fetch->offset, 0};
      if (fetch->path == "targets/big") {
        const std::size_t length = std::min<std::size_t>(fetch->max_bytes, size - fetch->offset);
        chunk = {fetch->request, "ok", "", fetch->offset, size};
        payload.emplace_back(file.data() + fetch->offset, length);
      }
      REQUIRE(protocol::send_to_peer(server.router, message.routing_id, protocol::encode(chunk, std::move(payload))));
    }
  };
  auto fetcher = client::AggregatorFetcher::connect(server.device_keys, server.server_keys.public_identity(),
                                                    protocol::last_endpoint(server.router), 10s);
  REQUIRE(fetcher);

  std::thread serving([&] { serve(3 + 1 + 1); });
  auto whole = (*fetcher)->fetch("targets/big", size);
  auto missing = (*fetcher)->fetch("metadata/2.root.json", 1 << 10);
  auto over_cap = (*fetcher)->fetch("targets/big", size - 1);
  serving.join();

  REQUIRE(whole);
  CHECK(std::string(whole->begin(), whole->end()) == file);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::not_found);
  REQUIRE_FALSE(over_cap);
  CHECK_THAT(over_cap.error().message, Catch::Contains("targets/big is " + std::to_string(size) + " bytes, longer than"));
  REQUIRE(requests.size() == 5);
  CHECK(requests[1].offset == protocol::kFileChunkBytes);  // chunks follow one another
  CHECK(requests[2].max_bytes == 12346);                     // the last asks one byte past the cap
  CHECK(requests[3].max_bytes == 1025);
}
