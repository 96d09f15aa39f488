#include "shoal/updater/release_installer.h"

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include "release_fixture.h"
#include "shoal/updater/delta_codec.h"

using namespace shoal;
using namespace shoal::updater;
using shoal::testing::ReleaseFixture;

namespace {

struct PublishedFixture : ReleaseFixture {
  ReleaseRepository repository = make_repository();
  PublishedFixture() {
    release(repository, 1);
    trust_first_root();
  }
};

}  // namespace

TEST_CASE("a device takes the full file first, then the delta from the model it runs") {
  PublishedFixture fixture;
  auto first = fixture.install();
  REQUIRE(first.ok());
  CHECK(first->installed);
  CHECK_FALSE(first->previous_version.has_value());
  REQUIRE(first->file.has_value());
  CHECK(first->file->kind == ReleaseFileKind::full);

  fixture.release(fixture.repository, 2);
  auto second = fixture.install();
  REQUIRE(second.ok());
  CHECK(second->previous_version == 1u);
  CHECK(second->version == 2);
  REQUIRE(second->file.has_value());
  CHECK(second->file->path == "cnn/v2.from-v1.delta");

  auto store = ModelStore::open(fixture.models_dir);
  REQUIRE(store.ok());
  auto active = store->load_active();
  REQUIRE(active.ok());
  CHECK(values_hash(**active) == values_hash(ReleaseFixture::model_version(2)));
}

TEST_CASE("a release and its delta install the model's buffers bit for bit") {
  PublishedFixture fixture;
  REQUIRE(fixture.install().ok());
  fixture.release(fixture.repository, 2);
  auto outcome = fixture.install();
  REQUIRE(outcome.ok());
  REQUIRE(outcome->file->kind == ReleaseFileKind::delta);
  auto active = ModelStore::open(fixture.models_dir)->load_active();
  REQUIRE(active.ok());
  const auto& installed = **active;
  const auto expected = ReleaseFixture::model_version(2);
  REQUIRE(installed.layout() == expected.layout());
  REQUIRE(installed.layout().has_buffers());
  const auto buffers = installed.values().subspan(installed.layout().parameter_value_count());
  const auto expected_buffers = expected.values().subspan(expected.layout().parameter_value_count());
  CHECK(std::memcmp(buffers.data(), expected_buffers.data(), buffers.size_bytes()) == 0);
  CHECK(buffers.back() == 200.0f);  // the batch counter, whole
}

TEST_CASE("a device behind the repository's deltas takes the full file, an up-to-date one downloads nothing") {
  PublishedFixture fixture;
  REQUIRE(fixture.install().ok());
  fixture.release(fixture.repository, 2, /*deltas=*/1);
  fixture.release(fixture.repository, 3, /*deltas=*/1);  // a delta from 2 only
  auto outcome = fixture.install();
  REQUIRE(outcome.ok());
  CHECK(outcome->file->path == "cnn/v3.weights");
  CHECK(fixture.active_version() == 3);

  auto again = fixture.install();
  REQUIRE(again.ok());
  CHECK_FALSE(again->installed);
  CHECK_FALSE(again->file.has_value());
  CHECK(again->version == 3);
}

TEST_CASE("rollback returns to the previous model, which stays until a newer release") {
  PublishedFixture fixture;
  REQUIRE(fixture.install().ok());
  fixture.release(fixture.repository, 2);
  REQUIRE(fixture.install().ok());
  {
    auto store = ModelStore::open(fixture.models_dir);
    REQUIRE(store.ok());
    REQUIRE(store->rollback().ok());
  }
  CHECK(fixture.active_version() == 1);
  auto held = fixture.install();
  REQUIRE(held.ok());
  CHECK_FALSE(held->installed);
  CHECK(held->held_back);
  CHECK(fixture.active_version() == 1);

  fixture.release(fixture.repository, 3);
  auto outcome = fixture.install();
  REQUIRE(outcome.ok());
  CHECK(outcome->installed);
  CHECK(fixture.active_version() == 3);
  auto store = ModelStore::open(fixture.models_dir);
  REQUIRE(store.ok());
  CHECK_FALSE(store->rolled_back().has_value());
}

TEST_CASE("a release that fails its smoke test is not installed, and the step is named") {
  PublishedFixture fixture;
  REQUIRE(fixture.install().ok());
  fixture.release(fixture.repository, 2);
  DirectoryFetcher fetcher(fixture.repo_dir);
  auto client = TufClient::open(fixture.trust_dir);
  auto store = ModelStore::open(fixture.models_dir);
  REQUIRE(client.ok());
  REQUIRE(store.ok());
  InstallOptions options;
  options.model = "cnn";
  options.start_time = fixture.now;
  options.smoke_test = [](const weights::Weights& weights) -> Status {
    return make_error(ErrorCode::verification, "probe output of version " + std::to_string(weights.version()) + " is NaN");
  };
  auto outcome = install_latest_release(fetcher, *client, *store, options);
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.error().message == "install step 'smoke test': probe output of version 2 is NaN");
  CHECK(fixture.active_version() == 1);
}

TEST_CASE("a release with non-finite weights is refused before the smoke test") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  auto broken = ReleaseFixture::model_version(1);
  broken.values()[17] = std::numeric_limits<float>::infinity();
  REQUIRE(repository.add(broken, "cnn", 1, fixture.now).ok());
  REQUIRE(repository.sign(RoleName::targets, fixture.targets_key).ok());
  REQUIRE(repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now).ok());
  fixture.trust_first_root();
  auto outcome = fixture.install();
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.error().message == "install step 'smoke test': weight 17 is not finite");
  CHECK(fixture.active_version() == 0);
}

TEST_CASE("a repository without the device's model is a clear error") {
  ReleaseFixture fixture;
  auto repository = fixture.make_repository();
  REQUIRE(repository.add(ReleaseFixture::model_version(1), "mlp", 1, fixture.now).ok());
  REQUIRE(repository.sign(RoleName::targets, fixture.targets_key).ok());
  REQUIRE(repository.publish(fixture.snapshot_key, fixture.timestamp_key, fixture.now).ok());
  fixture.trust_first_root();
  auto outcome = fixture.install();
  REQUIRE_FALSE(outcome.ok());
  CHECK_THAT(outcome.error().message, Catch::Contains("no release of model 'cnn'"));
}

// Fault injection: the install process is killed right after each step in
// turn (the hook ends it with _exit, as a power cut would end it, without
// running any destructor). What it leaves must load as version 1 or 2, and
// the next install must finish the job.
TEST_CASE("an install killed after any step leaves a loadable model, and the next install completes") {
  for (int step = 0; step <= static_cast<int>(kLastInstallStep); ++step) {
    const auto stop_after = static_cast<InstallStep>(step);
    INFO("killed after " << step_name(stop_after));
    PublishedFixture fixture;
    REQUIRE(fixture.install().ok());
    fixture.release(fixture.repository, 2);

    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto outcome = fixture.install([&](InstallStep done) {
        if (done == stop_after) ::_exit(42);
      });
      ::_exit(outcome.ok() ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 42);

    const std::uint64_t left = fixture.active_version();
    CHECK((left == 1 || left == 2));
    CHECK(left == (stop_after == InstallStep::switch_active ? 2u : 1u));
    auto resumed = fixture.install();
    REQUIRE(resumed.ok());
    CHECK(fixture.active_version() == 2);
  }
}

TEST_CASE("wrong base or wrong target for a delta: a delta that does not build the signed version is refused") {
  PublishedFixture fixture;
  REQUIRE(fixture.install().ok());
  fixture.release(fixture.repository, 2);
  // A publisher's mistake, signed as if right: the delta listed as 1 -> 2 is another one.
  const std::string path = "cnn/v2.from-v1.delta";
  std::string expected;
  Result<std::vector<std::uint8_t>> wrong = std::vector<std::uint8_t>();
  SECTION("made from version 5") {
    wrong = encode_delta(ReleaseFixture::model_version(5), ReleaseFixture::model_version(2));
    expected = "install step 'rebuild weights': cnn/v2.from-v1.delta: the delta applies to version 5";
  }
  SECTION("building version 3") {
    wrong = encode_delta(ReleaseFixture::model_version(1), ReleaseFixture::model_version(3));
    expected = "install step 'rebuild weights': cnn/v2.from-v1.delta builds a version other than the signed one";
  }
  REQUIRE(wrong.ok());
  REQUIRE(base::write_file_durably(fixture.repo_dir / "targets" / path, *wrong).ok());
  fixture.rewrite(fixture.metadata_path(RoleName::targets), [&](nlohmann::json& targets) {
    targets["version"] = targets["version"].get<std::uint64_t>() + 1;
    targets["targets"][path]["length"] = wrong->size();
    targets["targets"][path]["hashes"] = file_hashes(*wrong);
  }, {&fixture.targets_key});
  fixture.rechain_with_online_keys();

  auto outcome = fixture.install();
  REQUIRE_FALSE(outcome.ok());
  CHECK_THAT(outcome.error().message, Catch::StartsWith(expected));
  CHECK(fixture.active_version() == 1);
}
