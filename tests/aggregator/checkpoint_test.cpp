#include "shoal/aggregator/checkpoint.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>

#include "fault_sweep.h"
#include "shoal/base/durable_file.h"
#include "shoal/weights/weights_file.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::aggregator;
using shoal::testing::TempDir;

namespace {

weights::Weights model_at(std::uint64_t version, float fill) {
  auto layout = *weights::Layout::create({{"fc.weight", {2, 3}}, {"fc.bias", {2}}});
  return *weights::Weights::from_values(layout, version, std::vector<float>(8, fill));
}

Checkpoint checkpoint_at(std::uint64_t version) {
  const float f = static_cast<float>(version);
  return Checkpoint{model_at(version, f), version + 2, "fedadam", std::vector<float>(8, f / 10),
                    std::vector<float>(8, f / 100), std::nullopt};
}

void overwrite(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST_CASE("a checkpoint reads back whole, and older versions' files are removed") {
  TempDir dir;
  REQUIRE(write_checkpoint(dir.path(), checkpoint_at(1)));
  REQUIRE(write_checkpoint(dir.path(), checkpoint_at(2)));
  auto read = read_checkpoint(dir.path());
  REQUIRE(read);
  REQUIRE(read->has_value());
  const auto& checkpoint = **read;
  CHECK(checkpoint.global.version() == 2);
  CHECK(checkpoint.global.values()[0] == 2.0f);
  CHECK(checkpoint.rounds_started == 4);
  CHECK(checkpoint.strategy == "fedadam");
  CHECK(checkpoint.first_moment == std::vector<float>(8, 0.2f));
  CHECK(checkpoint.second_moment == std::vector<float>(8, 0.02f));
  CHECK_FALSE(std::filesystem::exists(dir / "global-v1.weights"));
  CHECK_FALSE(std::filesystem::exists(dir / "moments-v1-first.weights"));
}

TEST_CASE("a checkpoint keeps the privacy spent and the clip norm, exactly") {
  TempDir dir;
  auto checkpoint = checkpoint_at(1);
  const PrivacyState privacy{{1.5, 2.0, 32.0}, {0.1 / 3, 0.0, 1e-300}, 0.8123456789012345};
  checkpoint.privacy = privacy;
  REQUIRE(write_checkpoint(dir.path(), checkpoint));
  auto read = *read_checkpoint(dir.path());
  REQUIRE(read->privacy);
  CHECK(read->privacy->orders == privacy.orders);
  CHECK(read->privacy->rdp == privacy.rdp);  // bit for bit: ε must not drift across restarts
  CHECK(read->privacy->clip_norm == privacy.clip_norm);
  REQUIRE(write_checkpoint(dir.path(), checkpoint_at(2)));
  CHECK_FALSE((*read_checkpoint(dir.path()))->privacy);
}

TEST_CASE("an empty state directory has no checkpoint, and fedavg stores no moments") {
  TempDir dir;
  auto none = read_checkpoint(dir.path());
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
  REQUIRE(write_checkpoint(dir.path(), Checkpoint{model_at(3, 1.0f), 3, "fedavg", {}, {}, std::nullopt}));
  auto read = *read_checkpoint(dir.path());
  CHECK(read->first_moment.empty());
  CHECK_FALSE(std::filesystem::exists(dir / "moments-v3-first.weights"));
}

namespace {

// The version a restarted aggregator resumes from, with its files checked whole.
std::uint64_t resumed_version(const std::filesystem::path& dir) {
  auto read = read_checkpoint(dir);
  REQUIRE(read);
  REQUIRE(read->has_value());
  const auto& checkpoint = **read;
  const float f = static_cast<float>(checkpoint.global.version());
  CHECK(checkpoint.global.values()[0] == f);
  CHECK(checkpoint.first_moment == std::vector<float>(8, f / 10));
  CHECK(checkpoint.rounds_started == checkpoint.global.version() + 2);
  return checkpoint.global.version();
}

}  // namespace

TEST_CASE("a crash between any two disk operations of a checkpoint resumes the old or the new one, whole") {
  TempDir dir;
  auto prepare = [&] {
    std::filesystem::remove_all(dir.path());
    REQUIRE(write_checkpoint(dir.path(), checkpoint_at(1)));
  };
  auto write = [&](base::Env& env) { return write_checkpoint(dir.path(), checkpoint_at(2), env); };
  std::size_t resumed_new = 0;
  shoal::testing::crash_sweep(prepare, write, [&](std::size_t, std::size_t, bool succeeded) {
    const auto version = resumed_version(dir.path());
    CHECK((version == 1 || version == 2));
    if (succeeded) CHECK(version == 2);
    resumed_new += version == 2;
    // The next checkpoint after the restart goes through and clears what the crash left.
    REQUIRE(write_checkpoint(dir.path(), checkpoint_at(3)));
    CHECK(resumed_version(dir.path()) == 3);
    CHECK(*base::Env::standard().list_directory(dir.path()) ==
          std::vector<std::string>{"checkpoint.json", "global-v3.weights", "moments-v3-first.weights",
                                   "moments-v3-second.weights"});
  });
  CHECK(resumed_new > 0);  // the sweep reached past the commit point
}

TEST_CASE("ENOSPC or EIO anywhere in a checkpoint is reported and never loses the previous one") {
  TempDir dir;
  auto prepare = [&] {
    std::filesystem::remove_all(dir.path());
    REQUIRE(write_checkpoint(dir.path(), checkpoint_at(1)));
  };
  std::string message;
  auto write = [&](base::Env& env) {
    auto status = write_checkpoint(dir.path(), checkpoint_at(2), env);
    message = status ? "" : status.error().message;
    return status;
  };
  shoal::testing::failure_sweep(prepare, write, [&](std::size_t, int error_number, bool succeeded) {
    const auto version = resumed_version(dir.path());
    CHECK((version == 1 || version == 2));
    // A failed operation before the pruning is reported, naming the errno; a
    // failed removal of an old file is not a failed checkpoint.
    if (!succeeded) CHECK(message.find(std::strerror(error_number)) != std::string::npos);
    if (version == 1) CHECK_FALSE(succeeded);
  });
}

TEST_CASE("a damaged checkpoint is an error naming the file and the fault") {
  TempDir dir;
  REQUIRE(write_checkpoint(dir.path(), checkpoint_at(1)));
  const auto index = base::read_file(dir / "checkpoint.json", 1 << 16).value();

  overwrite(dir / "checkpoint.json", index.substr(0, index.size() / 2));
  auto truncated = read_checkpoint(dir.path());
  REQUIRE_FALSE(truncated);
  CHECK(truncated.error().message.find("checkpoint.json: malformed") != std::string::npos);

  std::string escaping = index;
  escaping.replace(escaping.find("global-v1.weights"), 17, "../global-v1.weights");
  overwrite(dir / "checkpoint.json", escaping);
  auto escaped = read_checkpoint(dir.path());
  REQUIRE_FALSE(escaped);
  CHECK(escaped.error().message.find("not a file in the state directory") != std::string::npos);

  std::string negative = index;
  REQUIRE(negative.find("\"rounds_started\": 3") != std::string::npos);
  negative.replace(negative.find("\"rounds_started\": 3"), 19, "\"rounds_started\": -5");
  overwrite(dir / "checkpoint.json", negative);
  auto wrapped = read_checkpoint(dir.path());
  REQUIRE_FALSE(wrapped);
  CHECK_THAT(wrapped.error().message, Catch::Contains("rounds_started is -5, not a count"));

  overwrite(dir / "checkpoint.json", index);
  overwrite(dir / "moments-v1-second.weights", "SHOALWTS");
  auto moment = read_checkpoint(dir.path());
  REQUIRE_FALSE(moment);
  CHECK(moment.error().message.find("moments-v1-second.weights") != std::string::npos);
}

TEST_CASE("damaged privacy accounting in a checkpoint is an error naming it") {
  TempDir dir;
  auto checkpoint = checkpoint_at(1);
  checkpoint.privacy = PrivacyState{{1.5, 2.0}, {0.25, 0.5}, 1.0};
  REQUIRE(write_checkpoint(dir.path(), checkpoint));
  const auto index = base::read_file(dir / "checkpoint.json", 1 << 16).value();
  const auto damage = [&](const std::string& from, const std::string& to) {
    std::string text = index;
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    overwrite(dir / "checkpoint.json", text.replace(at, from.size(), to));
    auto read = read_checkpoint(dir.path());
    REQUIRE_FALSE(read);
    return read.error().message;
  };
  CHECK_THAT(damage("0.25", "-0.25"), Catch::Contains("checkpoint.json: privacy: RDP -0.25 at order 1.5"));
  CHECK_THAT(damage("0.25,", ""), Catch::Contains("checkpoint.json: privacy: 2 RDP orders but 1 RDP values"));
  CHECK_THAT(damage("\"clip_norm\": 1.0", "\"clip_norm\": -1.0"), Catch::Contains("clip_norm -1.0 is not a norm"));
  CHECK_THAT(damage("\"rdp\"", "\"rpd\""), Catch::Contains("checkpoint.json: malformed"));
}
