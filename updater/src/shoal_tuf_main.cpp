// shoal-tuf: a generic TUF 1.0 client over any target files, with no
// model or torch code, so that shoal's client can be checked by standard
// TUF tooling against metadata that python-tuf or go-tuf wrote.
//
//   shoal-tuf --metadata-dir D init ROOT                  trust ROOT; no network
//   shoal-tuf --metadata-url U --metadata-dir D refresh   update D from U
//   shoal-tuf --metadata-url U --metadata-dir D --target-name P [--target-name P2 ...]
//             --target-dir T --target-base-url TU download
//
// U and TU are http(s) URLs or directories; U holds root versions as
// "N.root.json" and the other roles beside them, TU the target files. D
// keeps each trusted role as "<role>.json", the bytes as received. Each
// target goes into T as its path percent-encoded into one file name, and a
// copy there that matches the signed length and hashes is not downloaded
// again. Expiry is judged against the system clock. The exit status is 0 on
// success and exactly 1 on any failure, the reason on stderr.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>

#include "shoal/base/byte_io.h"
#include "shoal/base/durable_file.h"
#include "shoal/updater/http_fetcher.h"
#include "shoal/updater/tuf_client.h"

namespace fs = std::filesystem;
using namespace shoal;
using namespace shoal::updater;

namespace {

int fail(const Error& error) {
  std::cerr << "shoal-tuf: " << error.describe() << "\n";
  return 1;
}

Result<std::unique_ptr<RepositoryFetcher>> open_place(const std::string& place, const fs::path& ca_file) {
  if (is_http_repository(place)) {
    HttpFetcherOptions options;
    options.ca_file = ca_file;
    auto fetcher = HttpFetcher::open(place, options);
    if (!fetcher) return fetcher.error();
    return std::unique_ptr<RepositoryFetcher>(std::move(fetcher).value());
  }
  if (!fs::is_directory(place)) {
    return make_error(ErrorCode::invalid_argument, "'" + place + "' is neither an http(s) URL nor a directory");
  }
  return std::unique_ptr<RepositoryFetcher>(std::make_unique<DirectoryFetcher>(place));
}

// The client asks for "metadata/X" and "targets/X"; here metadata and
// targets each have their own base, holding X directly.
class SeparateBasesFetcher : public RepositoryFetcher {
 public:
  SeparateBasesFetcher(std::unique_ptr<RepositoryFetcher> metadata, std::unique_ptr<RepositoryFetcher> targets)
      : metadata_(std::move(metadata)), targets_(std::move(targets)) {}
  Result<std::vector<std::uint8_t>> fetch(const std::string& path, std::uint64_t max_bytes) override {
    for (auto [prefix, fetcher] : {std::pair{std::string_view("metadata/"), metadata_.get()},
                                   std::pair{std::string_view("targets/"), targets_.get()}}) {
      if (path.starts_with(prefix)) {
        if (!fetcher) return make_error(ErrorCode::invalid_argument, "no --target-base-url given");
        return fetcher->fetch(path.substr(prefix.size()), max_bytes);
      }
    }
    return make_error(ErrorCode::invalid_argument, "'" + path + "' is not a metadata or target path");
  }
  std::string describe() const override { return metadata_->describe(); }

 private:
  std::unique_ptr<RepositoryFetcher> metadata_;
  std::unique_ptr<RepositoryFetcher> targets_;
};

// Whether `path` already holds the target as signed.
bool cached_copy_is_valid(const fs::path& path, const TargetFile& target) {
  auto bytes = base::read_file(path, target.length + 1);
  return bytes && bytes->size() == target.length && check_hashes(base::text_bytes(*bytes), target.hashes, "").ok();
}

struct Options {
  fs::path metadata_dir;
  std::string metadata_url;
  std::vector<std::string> target_names;
  fs::path target_dir;
  std::string target_base_url;
  fs::path ca_file;
  fs::path root;
};

int run_init(const Options& options) {
  auto root = base::read_file(options.root, DownloadLimits{}.root_bytes);
  if (!root) return fail(root.error());
  if (auto status = TufClient::trust_root(options.metadata_dir, base::text_bytes(*root), options.root.string());
      !status) {
    return fail(status.error());
  }
  std::printf("trusting %s in %s\n", options.root.c_str(), options.metadata_dir.c_str());
  return 0;
}

int run_update(const Options& options, bool download) {
  const UnixTime start_time = now_utc();  // spec 5.1: fixed before anything is fetched
  if (options.metadata_url.empty()) return fail(make_error(ErrorCode::invalid_argument, "--metadata-url is required"));
  auto metadata = open_place(options.metadata_url, options.ca_file);
  if (!metadata) return fail(metadata.error());
  std::unique_ptr<RepositoryFetcher> targets;
  if (download) {
    if (options.target_names.empty() || options.target_dir.empty() || options.target_base_url.empty()) {
      return fail(make_error(ErrorCode::invalid_argument,
                             "download needs --target-name, --target-dir and --target-base-url"));
    }
    auto opened = open_place(options.target_base_url, options.ca_file);
    if (!opened) return fail(opened.error());
    targets = std::move(opened).value();
  }
  SeparateBasesFetcher fetcher(std::move(metadata).value(), std::move(targets));
  auto client = TufClient::open(options.metadata_dir);
  if (!client) return fail(client.error());
  auto refreshed = client->refresh(fetcher, start_time);
  if (!refreshed) return fail(refreshed.error());
  const auto& trusted = client->trusted();
  std::printf("root version %llu, timestamp %llu, snapshot %llu, targets %llu\n",
              static_cast<unsigned long long>(trusted.root.version),
              static_cast<unsigned long long>(trusted.timestamp->version),
              static_cast<unsigned long long>(trusted.snapshot->version),
              static_cast<unsigned long long>(refreshed->version));
  if (!download) return 0;
  if (auto status = base::Env::standard().create_directories(options.target_dir); !status) return fail(status.error());
  for (const auto& name : options.target_names) {
    auto found = client->find_target(fetcher, name, start_time);
    if (!found) return fail(found.error());
    if (!*found) return fail(make_error(ErrorCode::not_found, "no role signs target '" + name + "'"));
    const fs::path path = options.target_dir / encode_role_name(name);
    if (cached_copy_is_valid(path, (*found)->file)) {
      std::printf("%s: cached copy is valid (signed by %s)\n", name.c_str(), (*found)->role.c_str());
      continue;
    }
    auto bytes = client->download_target(fetcher, name, (*found)->file);
    if (!bytes) return fail(bytes.error());
    if (auto status = base::write_file_durably(path, *bytes); !status) return fail(status.error());
    std::printf("%s: downloaded %zu bytes (signed by %s)\n", name.c_str(), bytes->size(), (*found)->role.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoal-tuf: a TUF 1.0 client for any target files"};
  app.require_subcommand(1);
  Options options;
  app.add_option("--metadata-dir", options.metadata_dir, "where trusted metadata is kept")->required();
  app.add_option("--metadata-url", options.metadata_url, "the metadata's base: an http(s) URL or a directory");
  app.add_option("--target-name", options.target_names, "a target path to download (repeat for several)");
  app.add_option("--target-dir", options.target_dir, "where downloaded targets go");
  app.add_option("--target-base-url", options.target_base_url, "the targets' base: an http(s) URL or a directory");
  app.add_option("--ca-file", options.ca_file, "the CAs an https server's certificate is checked against");
  auto* init = app.add_subcommand("init", "trust ROOT, the first root metadata, given out of band");
  init->add_option("ROOT", options.root, "root metadata file")->required();
  auto* refresh = app.add_subcommand("refresh", "update the trusted metadata");
  auto* download = app.add_subcommand("download", "update, then download the --target-name targets");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? 0 : 1;
  }
  if (*init) return run_init(options);
  if (*refresh) return run_update(options, /*download=*/false);
  if (*download) return run_update(options, /*download=*/true);
  return 1;
}
