// HttpFetcher: a release repository on an HTTP(S) server, or on any static
// file host or CDN that serves its directory as it is. libcurl does the
// transport. TLS certificates and host names are checked against the
// system's CAs, unless `ca_file` names the CAs to trust.
//
// Against a hostile server or network (the TUF threat model): a file is
// read to at most its cap, whatever the server declares; a transfer slower
// than `min_bytes_per_s` for `slow_for` is abandoned (slow retrieval); a
// redirect may go to http(s) only, at most 3 times, and never from https
// to http. What is fetched is untrusted: the TUF client checks it.
//
// A transfer that fails on the way (a refused or dropped connection, a
// timeout, HTTP 429 or 5xx) is retried up to `attempts` times in all, after
// exponentially growing delays with jitter. What had arrived is kept: the
// retry asks for the rest with a Range request, and starts over only if
// the server cannot resume. With `partial_dir`, what arrived of a target
// file is also kept on disk as it arrives, so a download the process did
// not live to finish resumes from there after a restart (the TUF client
// checks length and hashes of the whole, as ever). 403, 404 and 410 mean
// not found. Proxies come
// from the environment (http_proxy, https_proxy, no_proxy), as libcurl reads
// them.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/updater/repository_fetcher.h"

namespace shoal::updater {

struct HttpFetcherOptions {
  std::chrono::seconds connect_timeout{10};
  std::uint64_t min_bytes_per_s = 1024;
  std::chrono::seconds slow_for{30};
  std::filesystem::path ca_file;  // empty: the system's CAs
  int attempts = 4;                               // tries of one file, the first included
  std::chrono::milliseconds first_retry_delay{500};  // doubling after each retry
  std::chrono::milliseconds max_retry_delay{30000};
  // Where downloads in progress of files outside metadata/ (the targets) are
  // kept across restarts; empty: in memory only.
  std::filesystem::path partial_dir;
};

// Whether `repository` names an HTTP(S) repository rather than a directory.
bool is_http_repository(const std::string& repository);

// The wait before retry `retry` (1 for the first): `first` doubled each
// time, at most `most`, scaled by `jitter` in [0.5, 1.5) so that a fleet
// that failed together does not retry together.
std::chrono::milliseconds retry_delay(int retry, std::chrono::milliseconds first, std::chrono::milliseconds most,
                                      double jitter);

class HttpFetcher : public RepositoryFetcher {
 public:
  // `base_url`: "https://releases.example.com/fleet" (the repository's root,
  // holding metadata/ and targets/). Refused unless http:// or https://.
  static Result<std::unique_ptr<HttpFetcher>> open(std::string base_url, HttpFetcherOptions options = {});
  ~HttpFetcher() override;

  Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) override;
  std::string describe() const override { return base_url_; }
  // The file a download of `path` in progress is kept in (with partial_dir).
  std::filesystem::path partial_path(const std::string& path) const;

 private:
  HttpFetcher(std::string base_url, HttpFetcherOptions options);

  std::string base_url_;  // without a trailing slash
  HttpFetcherOptions options_;
  std::minstd_rand jitter_;  // retry jitter; devices seed their own, so a fleet spreads out
  void* curl_ = nullptr;  // one easy handle, so connections are kept alive between fetches
};

}  // namespace shoal::updater
