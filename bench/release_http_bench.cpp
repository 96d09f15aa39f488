// release_http_bench: a device installing releases over HTTP on loopback,
// beside curl fetching the same files from the same server in the same run.
//
// A repository (consistent snapshots) holds versions 1 and 2 of a model of
// --params float parameters, version 2 changing 1% of them; cpp-httplib's
// static file handler serves it, as any static host would. It prints:
//   full install     a fresh device trusts root 1 and installs version 2:
//                    the TUF refresh, the download, the checks, and the
//                    durable write of the model (the time in HTTP transfers
//                    is printed apart)
//   delta install    a device running version 1 installs version 2
//   curl             one curl process fetching the same files over one
//                    connection, with no checks: the transport's floor
//   resume           a full-file download cut at half and resumed by the
//                    next process with a Range request: bytes moved after
//                    the cut, and its time beside an uncut download
// Bytes are the files' bytes (headers not counted), for shoal and for curl.
//
// Usage: release_http_bench [--params 4000000] [--reps 3]
//        release_http_bench --smoke    (100k parameters, one repetition)
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>

#include "http_file_server.h"
#include "shoal/base/durable_file.h"
#include "shoal/updater/http_fetcher.h"
#include "shoal/updater/release_installer.h"
#include "shoal/updater/release_repository.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace shoal;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "release_http_bench: %s\n", message.c_str());
  std::exit(1);
}

template <typename T>
T must(Result<T> result) {
  if (!result) die(result.error().describe());
  return std::move(result).value();
}

void must(const Status& status) {
  if (!status) die(status.error().describe());
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Records the paths and bytes a device fetches.
class CountingFetcher : public updater::RepositoryFetcher {
 public:
  explicit CountingFetcher(updater::RepositoryFetcher& inner) : inner_(inner) {}
  Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) override {
    const auto start = Clock::now();
    auto bytes = inner_.fetch(path, max_bytes);
    seconds += seconds_since(start);
    if (bytes) {
      paths.push_back(path);
      total += bytes->size();
    }
    return bytes;
  }
  std::string describe() const override { return inner_.describe(); }
  std::vector<std::string> paths;
  std::uint64_t total = 0;
  double seconds = 0;  // in fetch()

 private:
  updater::RepositoryFetcher& inner_;
};

weights::Weights version(std::size_t params, std::uint64_t number) {
  auto layout = must(weights::Layout::create({{"w", {static_cast<std::int64_t>(params)}}}));
  std::mt19937 rng(5);
  std::normal_distribution<float> init(0.0f, 0.1f);
  std::vector<float> values(params);
  for (auto& value : values) value = init(rng);
  if (number >= 2) {
    for (std::size_t i = 0; i < params; i += 100) values[i] += 0.01f;  // 1% of the weights move
  }
  return must(weights::Weights::from_values(layout, number, std::move(values)));
}

struct Install {
  double seconds = 0;
  std::uint64_t bytes = 0;
  std::vector<std::string> paths;
  double fetch_seconds = 0;  // of `seconds`, in HTTP transfers
};

// Installs the newest release into `device` (trusting root 1 first if it trusts nothing yet).
Install install(const std::string& url, const fs::path& repo, const fs::path& device) {
  if (!fs::exists(device / "trust" / "root.json")) {
    auto root = must(base::read_file(repo / "metadata" / "1.root.json", 1 << 20));
    must(updater::TufClient::trust_root(device / "trust",
                                        std::span(reinterpret_cast<const std::uint8_t*>(root.data()), root.size()),
                                        "1.root.json"));
  }
  const auto start = Clock::now();
  auto http = must(updater::HttpFetcher::open(url));
  CountingFetcher fetcher(*http);
  auto client = must(updater::TufClient::open(device / "trust"));
  auto store = must(updater::ModelStore::open(device / "models"));
  updater::InstallOptions options;
  options.model = "bench";
  options.start_time = updater::now_utc();
  auto outcome = must(updater::install_latest_release(fetcher, client, store, options));
  if (!outcome.installed) die("nothing was installed");
  return {seconds_since(start), fetcher.total, fetcher.paths, fetcher.seconds};
}

struct CurlRun {
  double seconds = 0;
  std::uint64_t bytes = 0;
};

// One curl process fetching `paths` under `url` over one connection.
CurlRun curl(const std::string& url, const std::vector<std::string>& paths, const fs::path& out) {
  std::string command = "curl --silent --fail";
  for (const auto& path : paths) command += " -o /dev/null " + url + "/" + path;
  command += " --write-out '%{size_download}\\n' > " + out.string();
  const auto start = Clock::now();
  if (std::system(command.c_str()) != 0) die("curl failed (scripts/install-deps --bench installs it): " + command);
  CurlRun run{seconds_since(start), 0};
  auto sizes = must(base::read_file(out, 1 << 20));
  std::size_t at = 0;
  while (at < sizes.size()) {
    const auto end = sizes.find('\n', at);
    run.bytes += std::stoull(sizes.substr(at, end - at));
    at = end == std::string::npos ? sizes.size() : end + 1;
  }
  return run;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"release_http_bench: installs over HTTP beside curl, and the cost of a resume"};
  std::size_t params = 4'000'000;
  int reps = 3;
  bool smoke = false;
  app.add_option("--params", params, "float parameters of the model")->capture_default_str();
  app.add_option("--reps", reps, "repetitions (the median is printed)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_flag("--smoke", smoke, "100k parameters, one repetition");
  CLI11_PARSE(app, argc, argv);
  if (smoke) {
    params = 100'000;
    reps = 1;
  }

  shoal::testing::TempDir dir;
  const fs::path repo_dir = dir / "repo";
  const auto root = crypto::IdentityKeyPair::generate(), online = crypto::IdentityKeyPair::generate();
  std::map<updater::RoleName, updater::RoleKeyChoice> keys;
  for (auto role : updater::kAllRoles) keys[role].keys = {(role == updater::RoleName::root ? root : online).public_identity()};
  auto repository = must(updater::ReleaseRepository::init(repo_dir, keys, updater::now_utc()));
  must(repository.sign(updater::RoleName::root, root));
  auto publish = [&](std::uint64_t number) {
    must(repository.add(version(params, number), "bench", 1, updater::now_utc()));
    must(repository.sign(updater::RoleName::targets, online));
    must(repository.publish(online, online, updater::now_utc()));
  };

  // The cut route: the first request for each file stops at half; later ones are whole, or the range asked for.
  std::mutex cut_mutex;
  std::set<std::string> cut_once;
  std::uint64_t bytes_after_cut = 0;
  shoal::testing::HttpFileServer server(repo_dir, "/repo", [&](httplib::Server& http) {
    http.Get("/cut/(.*)", [&](const httplib::Request& request, httplib::Response& response) {
      const std::string path = request.matches[1].str();
      auto body = base::read_file(repo_dir / path, std::size_t{1} << 32);
      if (!body) {
        response.status = 404;
        return;
      }
      const bool first = [&] {
        std::lock_guard lock(cut_mutex);
        return cut_once.insert(path).second;
      }();
      if (first) {
        const std::string content = std::move(body).value();
        response.set_content_provider(content.size(), "application/octet-stream",
                                      [content](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                        if (offset >= content.size() / 2) return false;  // the connection drops
                                        return sink.write(content.data(), content.size() / 2);
                                      });
        return;
      }
      std::size_t from = 0;
      const std::string range = request.get_header_value("Range");
      if (range.rfind("bytes=", 0) == 0) from = std::stoull(range.substr(6));
      {
        std::lock_guard lock(cut_mutex);
        bytes_after_cut = body->size() - std::min(from, body->size());
      }
      response.set_content(*body, "application/octet-stream");  // cpp-httplib answers a Range with 206
    });
  });
  const std::string url = server.url("/repo");

  publish(1);
  const fs::path running_v1 = dir / "running-v1";
  install(url, repo_dir, running_v1);
  publish(2);

  std::vector<double> full_s, delta_s, curl_full_s, curl_delta_s, full_fetch_s, delta_fetch_s;
  Install full, delta;
  CurlRun curl_full, curl_delta;
  for (int rep = 0; rep < reps; ++rep) {
    const fs::path fresh = dir / ("fresh-" + std::to_string(rep));
    full = install(url, repo_dir, fresh);
    full_s.push_back(full.seconds);
    full_fetch_s.push_back(full.fetch_seconds);
    const fs::path updating = dir / ("updating-" + std::to_string(rep));
    fs::copy(running_v1, updating, fs::copy_options::recursive);
    delta = install(url, repo_dir, updating);
    delta_s.push_back(delta.seconds);
    delta_fetch_s.push_back(delta.fetch_seconds);
    curl_full = curl(url, full.paths, dir / "curl-full.txt");
    curl_full_s.push_back(curl_full.seconds);
    curl_delta = curl(url, delta.paths, dir / "curl-delta.txt");
    curl_delta_s.push_back(curl_delta.seconds);
  }
  const double full_file = static_cast<double>(fs::file_size(repo_dir / "targets" / "bench" / "v2.weights"));
  std::printf("model: %zu parameters; full file %.2f MB, delta %.2f MB (%zu metadata and target files per install)\n",
              params, full_file / 1e6,
              static_cast<double>(fs::file_size(repo_dir / "targets" / "bench" / "v2.from-v1.delta")) / 1e6,
              full.paths.size());
  auto row = [](const char* what, const Install& shoal_run, double shoal_s, double fetch_s, const CurlRun& curl_run,
                double curl_s) {
    std::printf("%-14s shoal %7.1f ms (fetching %7.1f ms) %8.3f MB | curl %7.1f ms %8.3f MB | "
                "time %.2fx curl (fetching %.2fx), bytes %.3fx curl\n",
                what, 1e3 * shoal_s, 1e3 * fetch_s, static_cast<double>(shoal_run.bytes) / 1e6, 1e3 * curl_s,
                static_cast<double>(curl_run.bytes) / 1e6, shoal_s / curl_s, fetch_s / curl_s,
                static_cast<double>(shoal_run.bytes) / static_cast<double>(curl_run.bytes));
  };
  row("full install", full, median(full_s), median(full_fetch_s), curl_full, median(curl_full_s));
  row("delta install", delta, median(delta_s), median(delta_fetch_s), curl_delta, median(curl_delta_s));
  if (full.bytes != curl_full.bytes || delta.bytes != curl_delta.bytes) die("shoal and curl fetched different bytes");

  // Resume: the first process is cut off at half and ends; the next resumes.
  const std::string full_path = "targets/bench/v2.weights";
  updater::HttpFetcherOptions options;
  options.attempts = 1;
  options.partial_dir = dir / "partial";
  std::vector<double> uncut_s;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = Clock::now();
    auto whole = must(updater::HttpFetcher::open(url));
    must(whole->fetch(full_path, static_cast<std::uint64_t>(full_file)));
    uncut_s.push_back(seconds_since(start));
  }
  {
    auto first = must(updater::HttpFetcher::open(server.url("/cut"), options));
    if (first->fetch(full_path, static_cast<std::uint64_t>(full_file))) die("the cut download was not cut");
  }
  const auto start = Clock::now();
  auto second = must(updater::HttpFetcher::open(server.url("/cut"), options));
  auto resumed = must(second->fetch(full_path, static_cast<std::uint64_t>(full_file)));
  const double resume_s = seconds_since(start);
  if (resumed.size() != static_cast<std::size_t>(full_file)) die("the resumed file is not whole");
  std::printf("resume         after a cut at half, the next process moved %.3f of the file in %.1f ms; "
              "an uncut download of it takes %.1f ms (%.2fx)\n",
              static_cast<double>(bytes_after_cut) / full_file, 1e3 * resume_s, 1e3 * median(uncut_s),
              resume_s / median(uncut_s));
  return 0;
}
