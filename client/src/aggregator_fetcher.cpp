#include "shoal/client/aggregator_fetcher.h"

#include "shoal/protocol/release_messages.h"
#include "shoal/protocol/transport.h"

namespace shoal::client {
namespace {

// A device receives file chunks and nothing larger.
const protocol::Limits kLimits{.max_payload_bytes = protocol::kFileChunkBytes, .max_payload_frames = 1};

}  // namespace

Result<std::unique_ptr<AggregatorFetcher>> AggregatorFetcher::connect(const crypto::IdentityKeyPair& device,
                                                                      const crypto::PublicIdentity& server,
                                                                      const std::string& endpoint,
                                                                      std::chrono::milliseconds reply_timeout) {
  std::unique_ptr<AggregatorFetcher> fetcher(new AggregatorFetcher(endpoint, reply_timeout));
  auto socket = protocol::connect_client_socket(fetcher->context_, device, server, endpoint, kLimits);
  if (!socket) return socket.error();
  fetcher->socket_ = std::move(socket).value();
  return fetcher;
}

Result<std::vector<std::uint8_t>> AggregatorFetcher::fetch(const std::string& path, std::uint64_t max_bytes) {
  std::vector<std::uint8_t> bytes;
  for (;;) {
    const std::uint64_t request = next_request_++;
    // Up to one byte past the cap, so an oversized file shows itself without being read.
    const std::uint64_t left = max_bytes - bytes.size();
    const std::uint64_t want = left >= protocol::kFileChunkBytes ? protocol::kFileChunkBytes : left + 1;
    if (!protocol::send_to_server(*socket_, protocol::encode(protocol::FetchFile{request, path, bytes.size(), want}))) {
      return make_error(ErrorCode::io, endpoint_ + ": cannot send the request for " + path);
    }
    std::optional<protocol::FileChunk> chunk;
    std::span<const std::uint8_t> payload;
    std::optional<protocol::Envelope> envelope;
    const auto deadline = std::chrono::steady_clock::now() + reply_timeout_;
    while (!chunk) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return make_error(ErrorCode::io, endpoint_ + ": no answer for " + path + " within " +
                                             std::to_string(reply_timeout_.count()) + " ms");
      }
      auto received = protocol::receive_from_server(*socket_, kLimits, left);
      if (!received || !*received) continue;  // nothing yet, or a malformed message: keep waiting
      auto decoded = protocol::decode<protocol::FileChunk>(**received);
      if (!decoded) continue;
      if (decoded->request != request && decoded->request != 0) continue;  // an answer to an earlier, abandoned request
      chunk = std::move(decoded).value();
      envelope.emplace(std::move(**received));  // keeps the payload frame alive
    }
    if (chunk->status == "not_found") {
      return make_error(ErrorCode::not_found, endpoint_ + ": " + path + " is not in the release repository");
    }
    if (chunk->status != "ok") {
      return make_error(ErrorCode::permission, endpoint_ + " refused " + path + ": " + chunk->detail);
    }
    if (chunk->total_size > max_bytes) {
      return make_error(ErrorCode::verification, endpoint_ + ": " + path + " is " + std::to_string(chunk->total_size) +
                                                     " bytes, longer than the " + std::to_string(max_bytes) +
                                                     " bytes allowed for it");
    }
    payload = envelope->payload(0);
    if (chunk->offset != bytes.size() || (payload.empty() && bytes.size() < chunk->total_size)) {
      return make_error(ErrorCode::corrupt, endpoint_ + ": a chunk of " + path + " at the wrong offset");
    }
    bytes.insert(bytes.end(), payload.begin(), payload.end());
    if (bytes.size() >= chunk->total_size) return bytes;
  }
}

}  // namespace shoal::client
