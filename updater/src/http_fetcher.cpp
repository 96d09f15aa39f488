#include "shoal/updater/http_fetcher.h"

#include <curl/curl.h>

#include "shoal/base/durable_file.h"
#include "shoal/updater/tuf_metadata.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <thread>

namespace shoal::updater {
namespace {

struct Download {
  CURL* curl = nullptr;
  std::vector<std::uint8_t> bytes;
  std::uint64_t max_bytes = 0;
  bool over_cap = false;
  std::FILE* partial = nullptr;  // what arrived, kept for a restart; null: memory only
  bool partial_failed = false;
};

bool is_success(long status) { return status >= 200 && status <= 299; }

std::size_t keep_bytes(char* data, std::size_t size, std::size_t count, void* user) {
  auto& download = *static_cast<Download*>(user);
  const std::size_t length = size * count;
  long status = 0;
  curl_easy_getinfo(download.curl, CURLINFO_RESPONSE_CODE, &status);
  if (!is_success(status)) return length;  // an error page is not the file
  if (download.bytes.size() + length > download.max_bytes) {
    download.over_cap = true;
    return 0;  // ends the transfer: nothing past the cap is read
  }
  download.bytes.insert(download.bytes.end(), data, data + length);
  if (download.partial != nullptr && !download.partial_failed) {
    // No sync: a torn tail after a power cut fails the hash at the end, and the next try starts over.
    download.partial_failed = std::fwrite(data, 1, length, download.partial) != length || std::fflush(download.partial) != 0;
  }
  return length;
}

// Opens the partial download `path` for appending, after reading what it
// holds into `download` (at most its cap; anything longer is started over).
void open_partial(const std::filesystem::path& path, Download& download) {
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  if (error) return;
  const auto size = std::filesystem::file_size(path, error);
  if (!error && size > 0 && size <= download.max_bytes) {
    auto kept = base::read_file(path, download.max_bytes);
    if (kept) download.bytes.assign(kept->begin(), kept->end());
  }
  download.partial = std::fopen(path.c_str(), download.bytes.empty() ? "wb" : "ab");
}

// Starts the kept part over: the server sent the whole file, or could not resume.
void restart_partial(const std::filesystem::path& path, Download& download) {
  download.bytes.clear();
  if (download.partial == nullptr) return;
  std::fclose(download.partial);
  download.partial = std::fopen(path.c_str(), "wb");
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

// Failures that another try may not have: the network's and the server's passing ones.
bool worth_retrying(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_RANGE_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::chrono::milliseconds retry_delay(int retry, std::chrono::milliseconds first, std::chrono::milliseconds most,
                                      double jitter) {
  double delay = static_cast<double>(first.count());
  for (int i = 1; i < retry && delay < static_cast<double>(most.count()); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(most.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(delay * std::clamp(jitter, 0.5, 1.5)));
}

bool is_http_repository(const std::string& repository) {
  return repository.rfind("http://", 0) == 0 || repository.rfind("https://", 0) == 0;
}

HttpFetcher::HttpFetcher(std::string base_url, HttpFetcherOptions options)
    : base_url_(std::move(base_url)),
      options_(std::move(options)),
      jitter_(std::random_device{}()) {}

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
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 0L);  // the status is looked at after each transfer
  return fetcher;
}

std::filesystem::path HttpFetcher::partial_path(const std::string& path) const {
  return options_.partial_dir / (encode_role_name(path) + ".partial");
}

Result<std::vector<std::uint8_t>> HttpFetcher::fetch(const std::string& path, std::uint64_t max_bytes) {
  auto* curl = static_cast<CURL*>(curl_);
  auto encoded = url_path(curl, path);
  if (!encoded) return encoded.error();
  const std::string url = base_url_ + *encoded;
  Download download;
  download.curl = curl;
  download.max_bytes = max_bytes;
  // Target files only (a SplitFetcher's targets fetcher sees them without the prefix): metadata is
  // small, and is read whole each time.
  const bool keep_partial = !options_.partial_dir.empty() && !path.starts_with("metadata/");
  const std::filesystem::path partial = keep_partial ? partial_path(path) : std::filesystem::path();
  if (keep_partial) open_partial(partial, download);
  struct Finish {  // closes the partial file; removes it unless a later try may resume it
    Download& download;
    const std::filesystem::path& path;
    bool keep = false;
    ~Finish() {
      if (download.partial != nullptr) std::fclose(download.partial);
      std::error_code ignored;
      if (!keep && !path.empty()) std::filesystem::remove(path, ignored);
    }
  } finish{download, partial};
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &download);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  std::string failure;
  for (int attempt = 1; attempt <= std::max(1, options_.attempts); ++attempt) {
    if (attempt > 1) {
      const double jitter = std::uniform_real_distribution<double>(0.5, 1.5)(jitter_);
      std::this_thread::sleep_for(
          retry_delay(attempt - 1, options_.first_retry_delay, options_.max_retry_delay, jitter));
    }
    // What arrived before is kept, and the rest asked for.
    const auto resume_from = static_cast<curl_off_t>(download.bytes.size());
    curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, resume_from);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(max_bytes - static_cast<std::uint64_t>(resume_from)));
    error[0] = '\0';
    const CURLcode code = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (download.over_cap || code == CURLE_FILESIZE_EXCEEDED) {
      curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
      return make_error(ErrorCode::corrupt, url + " is longer than its limit of " + std::to_string(max_bytes) + " bytes");
    }
    if (code == CURLE_OK && is_success(status)) {
      curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
      return std::move(download.bytes);  // whole: the TUF client checks it, and the partial file goes
    }
    if (code == CURLE_OK) {
      if (status == 416 && !download.bytes.empty()) {  // the kept part is not a part of the file served now
        failure = "HTTP 416";
        restart_partial(partial, download);
        continue;
      }
      if (status == 403 || status == 404 || status == 410) {
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
        return make_error(ErrorCode::not_found, url + ": HTTP " + std::to_string(status));
      }
      failure = "HTTP " + std::to_string(status);
      if (status != 429 && status < 500) break;
    } else {
      failure = error[0] != '\0' ? error : curl_easy_strerror(code);
      if (code == CURLE_RANGE_ERROR) restart_partial(partial, download);  // the server cannot resume: start over
      if (!worth_retrying(code)) break;
    }
  }
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  finish.keep = !download.bytes.empty();  // the network failed: a later fetch resumes from what arrived
  return make_error(ErrorCode::io, url + ": " + failure);
}

}  // namespace shoal::updater
