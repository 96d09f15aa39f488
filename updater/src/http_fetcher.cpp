#include "shoal/updater/http_fetcher.h"

#include <curl/curl.h>

#include <mutex>

namespace shoal::updater {
namespace {

struct Download {
  std::vector<std::uint8_t> bytes;
  std::uint64_t max_bytes = 0;
  bool over_cap = false;
};

std::size_t keep_bytes(char* data, std::size_t size, std::size_t count, void* user) {
  auto& download = *static_cast<Download*>(user);
  const std::size_t length = size * count;
  if (download.bytes.size() + length > download.max_bytes) {
    download.over_cap = true;
    return 0;  // ends the transfer: nothing past the cap is read
  }
  download.bytes.insert(download.bytes.end(), data, data + length);
  return length;
}

// Each path segment percent-encoded; the TUF client's paths are relative and have no empty or dot segments.
Result<std::string> url_path(CURL* curl, const std::string& path) {
  std::string encoded;
  std::size_t begin = 0;
  while (begin <= path.size()) {
    const std::size_t end = std::min(path.find('/', begin), path.size());
    const std::string segment = path.substr(begin, end - begin);
    if (segment.empty() || segment == "." || segment == "..") {
      return make_error(ErrorCode::invalid_argument, "repository path '" + path + "' has an empty or dot segment");
    }
    char* escaped = curl_easy_escape(curl, segment.data(), static_cast<int>(segment.size()));
    if (escaped == nullptr) return make_error(ErrorCode::io, "cannot encode repository path '" + path + "'");
    encoded += "/";
    encoded += escaped;
    curl_free(escaped);
    begin = end + 1;
  }
  return encoded;
}

}  // namespace

bool is_http_repository(const std::string& repository) {
  return repository.rfind("http://", 0) == 0 || repository.rfind("https://", 0) == 0;
}

HttpFetcher::HttpFetcher(std::string base_url, HttpFetcherOptions options)
    : base_url_(std::move(base_url)), options_(std::move(options)) {}

HttpFetcher::~HttpFetcher() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<std::unique_ptr<HttpFetcher>> HttpFetcher::open(std::string base_url, HttpFetcherOptions options) {
  if (!is_http_repository(base_url)) {
    return make_error(ErrorCode::invalid_argument, "release repository '" + base_url + "' is not an http(s) URL");
  }
  while (base_url.size() > 8 && base_url.back() == '/') base_url.pop_back();
  static std::once_flag initialised;
  static CURLcode global = CURLE_OK;
  std::call_once(initialised, [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global != CURLE_OK) return make_error(ErrorCode::io, std::string("libcurl: ") + curl_easy_strerror(global));
  std::unique_ptr<HttpFetcher> fetcher(new HttpFetcher(std::move(base_url), std::move(options)));
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return make_error(ErrorCode::io, "libcurl: cannot make a transfer handle");
  fetcher->curl_ = curl;
  const bool https = fetcher->base_url_.rfind("https://", 0) == 0;
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, https ? "https" : "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(fetcher->options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(fetcher->options_.min_bytes_per_s));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(fetcher->options_.slow_for.count()));
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!fetcher->options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, fetcher->options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "shoal-agent");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_bytes);
  return fetcher;
}

Result<std::vector<std::uint8_t>> HttpFetcher::fetch(const std::string& path, std::uint64_t max_bytes) {
  auto* curl = static_cast<CURL*>(curl_);
  auto encoded = url_path(curl, path);
  if (!encoded) return encoded.error();
  const std::string url = base_url_ + *encoded;
  Download download;
  download.max_bytes = max_bytes;
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &download);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (download.over_cap || code == CURLE_FILESIZE_EXCEEDED) {
    return make_error(ErrorCode::corrupt, url + " is longer than its limit of " + std::to_string(max_bytes) + " bytes");
  }
  if (code != CURLE_OK) {
    return make_error(ErrorCode::io, url + ": " + (error[0] != '\0' ? error : curl_easy_strerror(code)));
  }
  if (status == 404 || status == 410) return make_error(ErrorCode::not_found, url + ": HTTP " + std::to_string(status));
  if (status < 200 || status > 299) return make_error(ErrorCode::io, url + ": HTTP " + std::to_string(status));
  return std::move(download.bytes);
}

}  // namespace shoal::updater
