// Reads the release repository an aggregator serves, over CurveZMQ with
// the device's own key: the aggregator admits only enrolled devices, and
// the device trusts only the server key it pins. The connection is the
// fetcher's own, apart from the device's round connection.
//
// Files come in chunks of at most 1 MiB (FetchFile / FileChunk). A file
// whose size is over the cap the TUF client gives is refused before any of
// it is downloaded.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "shoal/crypto/identity.h"
#include "shoal/updater/repository_fetcher.h"

namespace shoal::client {

class AggregatorFetcher final : public updater::RepositoryFetcher {
 public:
  static Result<std::unique_ptr<AggregatorFetcher>> connect(const crypto::IdentityKeyPair& device,
                                                            const crypto::PublicIdentity& server,
                                                            const std::string& endpoint,
                                                            std::chrono::milliseconds reply_timeout);
  Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) override;
  std::string describe() const override { return endpoint_; }

 private:
  AggregatorFetcher(std::string endpoint, std::chrono::milliseconds reply_timeout)
      : endpoint_(std::move(endpoint)), reply_timeout_(reply_timeout) {}

  std::string endpoint_;
  std::chrono::milliseconds reply_timeout_;
  zmq::context_t context_{1};
  std::optional<zmq::socket_t> socket_;
  std::uint64_t next_request_ = 1;
};

}  // namespace shoal::client
