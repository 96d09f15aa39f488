// The health reports an agent makes from its release state: after a check
// that installed, failed or rolled back, and after an operator's rollback.
#include "shoal/client/release_health.h"

#include <catch2/catch.hpp>

#include "shoal/updater/model_store.h"
#include "rollout_fixture.h"
#include "temp_dir.h"

using namespace shoal;

namespace {

// A device state directory whose release store ran versions 1 then 2.
void install_versions(const std::filesystem::path& state_dir) {
  auto store = updater::ModelStore::open(updater::release_models_dir(state_dir));
  REQUIRE(store);
  for (std::uint64_t version : {1, 2}) {
    auto staged = store->stage(shoal::testing::model_version(version));
    REQUIRE(staged);
    REQUIRE(store->activate(*staged));
  }
}

}  // namespace

TEST_CASE("a release check's report says what was installed, which step failed, or what was rolled back") {
  shoal::testing::TempDir temp;
  const std::filesystem::path dir = temp.path();
  install_versions(dir);
  const client::ReleaseVersions versions = client::release_versions(dir);
  CHECK(versions.active == 2);
  CHECK(versions.previous == 1);

  updater::InstallOutcome installed;
  installed.installed = true;
  installed.version = 2;
  auto report = client::health_after_check("cnn", installed, 2, dir);
  REQUIRE(report);
  CHECK(report->event == "install");
  CHECK(report->attempted_version == 2);
  CHECK(report->smoke_test == "passed");
  CHECK(report->failed_step.empty());

  const Result<updater::InstallOutcome> failed =
      make_error(ErrorCode::verification, "install step 'smoke test': the probe's output is NaN");
  report = client::health_after_check("cnn", failed, 3, dir);
  REQUIRE(report);
  CHECK(report->attempted_version == 3);
  CHECK(report->failed_step == "smoke test");
  CHECK(report->smoke_test == "failed");
  CHECK(report->active_version == 2);

  const Result<updater::InstallOutcome> unreachable = make_error(ErrorCode::io, "install step 'download': refused");
  report = client::health_after_check("cnn", unreachable, 3, dir);
  REQUIRE(report);
  CHECK(report->failed_step == "download");
  CHECK(report->smoke_test == "not_run");
  CHECK_FALSE(client::health_after_check("cnn", unreachable, std::nullopt, dir));  // before any version was chosen

  updater::InstallOutcome up_to_date;
  up_to_date.version = 2;
  CHECK_FALSE(client::health_after_check("cnn", up_to_date, std::nullopt, dir));
}

TEST_CASE("an operator's rollback between release checks is reported once, as a rollback from the version left") {
  shoal::testing::TempDir temp;
  const std::filesystem::path dir = temp.path();
  install_versions(dir);
  const auto before = client::release_versions(dir);
  CHECK_FALSE(client::health_after_rollback_since("cnn", before, dir));  // nothing happened

  auto store = updater::ModelStore::open(updater::release_models_dir(dir));
  REQUIRE(store);
  REQUIRE(store->rollback());  // what `shoal-agent rollback` does
  auto report = client::health_after_rollback_since("cnn", before, dir);
  REQUIRE(report);
  CHECK(report->event == "rollback");
  CHECK(report->active_version == 1);
  CHECK(report->attempted_version == 2);
  // Against the versions after it, the same rollback is not reported again.
  CHECK_FALSE(client::health_after_rollback_since("cnn", client::release_versions(dir), dir));
}
