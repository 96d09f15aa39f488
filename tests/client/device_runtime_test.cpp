// DeviceRuntime: the device's one owner of its models, serving apps over
// real HTTP while releases install and roll back underneath.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "logreg_releases.h"
#include "shoal/client/device_runtime.h"
#include "shoal/client/local_tensors.h"
#include "shoal/inference/prediction_session.h"

using namespace shoal;
using shoal::testing::Releases;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<float> probe_image() {
  std::vector<float> pixels(784);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>(i % 97) / 97.0f;
  return pixels;
}

std::string infer_body() {
  return json{{"inputs", {{{"name", "input"}, {"shape", {1, 784}}, {"datatype", "FP32"}, {"data", probe_image()}}}},
              {"outputs", {{{"name", "logits"}}}}}
      .dump();
}

std::vector<float> own_prediction(const weights::Weights& weights) {
  auto model = inference::Model::from_zoo("logreg", 0);
  REQUIRE(model->set_weights(weights).ok());
  auto session = inference::PredictionSession::open(std::move(model).value(), inference::Device{});
  REQUIRE(session.ok());
  return session->predict(probe_image(), 1, inference::OutputKind::raw)->values;
}

struct Answer {
  std::size_t sent_after;     // swaps complete when the request was sent
  std::size_t returned_before;  // swaps begun when its answer came
  std::uint64_t version;
  std::vector<float> logits;
};

}  // namespace

TEST_CASE("a hot swap under load fails no request and answers each from the version active then") {
  Releases releases;
  releases.publish(1);
  auto runtime = releases.runtime();
  CHECK_FALSE(runtime->served_version());  // nothing installed: not ready
  REQUIRE(runtime->install_release(releases.update_options()).ok());
  REQUIRE(runtime->served_version() == 1);

  // The versions served after each swap: v1, then three installs and a rollback.
  const std::vector<std::uint64_t> served = {1, 2, 3, 4, 3};
  std::map<std::uint64_t, std::vector<float>> expected;
  for (std::uint64_t v = 1; v <= 4; ++v) expected[v] = own_prediction(releases.version(v));

  std::atomic<std::size_t> swaps_begun{1}, swaps_done{1}, answered{0}, failed{0};
  std::atomic<bool> done{false};
  std::mutex answers_mutex;
  std::vector<Answer> answers;
  std::vector<std::thread> clients;
  const int port = runtime->service()->port();
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      const std::string body = infer_body();
      while (!done.load()) {
        const std::size_t sent_after = swaps_done.load();
        auto result = client.Post("/v2/models/logreg/infer", body, "application/json");
        const std::size_t returned_before = swaps_begun.load();
        if (!result || result->status != 200) {
          ++failed;
          continue;
        }
        const auto response = json::parse(result->body);
        std::lock_guard lock(answers_mutex);
        answers.push_back({sent_after, returned_before, std::stoull(response["model_version"].get<std::string>()),
                           response["outputs"][0]["data"].get<std::vector<float>>()});
        ++answered;
      }
    });
  }
  // Each swap waits until some answers came since the last, so every version is seen under load.
  auto await_answers = [&](std::size_t more) {
    const std::size_t target = answered.load() + more;
    while (answered.load() < target && failed.load() == 0) std::this_thread::yield();
  };
  for (std::uint64_t v = 2; v <= 4; ++v) {
    await_answers(20);
    releases.publish(v);
    ++swaps_begun;
    auto outcome = runtime->install_release(releases.update_options());
    REQUIRE(outcome.ok());
    CHECK(outcome->installed);
    ++swaps_done;
  }
  await_answers(20);
  ++swaps_begun;
  auto rolled_back = runtime->roll_back();
  ++swaps_done;
  REQUIRE(rolled_back.ok());
  CHECK(*rolled_back == 3);
  await_answers(20);
  done = true;
  for (auto& thread : clients) thread.join();

  CHECK(failed.load() == 0);
  std::map<std::uint64_t, std::size_t> seen;
  for (const auto& answer : answers) {
    // The version served when it was sent, or one a swap begun before it returned put in.
    bool allowed = false;
    for (std::size_t i = answer.sent_after - 1; i < answer.returned_before; ++i) allowed |= served[i] == answer.version;
    INFO("answer version " << answer.version << ", sent after swap " << answer.sent_after << ", back before swap "
                           << answer.returned_before);
    CHECK(allowed);
    const auto& own = expected.at(answer.version);
    REQUIRE(answer.logits.size() == own.size());
    for (std::size_t j = 0; j < own.size(); ++j) CHECK(answer.logits[j] == Approx(own[j]).margin(1e-5));
    ++seen[answer.version];
  }
  CHECK(seen.size() == 4);
  CHECK(runtime->service()->metrics().swaps(serving::SwapCause::load) == 1);  // the first release
  CHECK(runtime->service()->metrics().swaps(serving::SwapCause::install) == 3);
  CHECK(runtime->service()->metrics().swaps(serving::SwapCause::rollback) == 1);
}

TEST_CASE("an install by another process is served at the runtime's next look") {
  Releases releases;
  releases.publish(1);
  REQUIRE(client::update_from_release(releases.update_options()).ok());
  auto runtime = releases.runtime();
  CHECK(runtime->served_version() == 1);  // what was installed before it started
  releases.publish(2);
  REQUIRE(client::update_from_release(releases.update_options()).ok());  // as `shoal-agent update` would
  CHECK(runtime->served_version() == 1);
  REQUIRE(runtime->refresh().ok());
  CHECK(runtime->served_version() == 2);
  REQUIRE(client::roll_back_release(releases.dir / "device").ok());
  REQUIRE(runtime->refresh().ok());
  CHECK(runtime->served_version() == 1);
  CHECK(runtime->service()->metrics().swaps(serving::SwapCause::rollback) == 1);
}

TEST_CASE("with latest-global the runtime serves each new global model, and never a release") {
  Releases releases;
  releases.publish(1);
  REQUIRE(client::update_from_release(releases.update_options()).ok());
  auto runtime = releases.runtime(client::ServeSource::latest_global);
  CHECK_FALSE(runtime->served_version());  // no global model yet; the release is not served
  runtime->on_global_model(releases.version(7));
  CHECK_FALSE(runtime->served_version());  // handed over, loaded by the next refresh (run() makes it at once)
  REQUIRE(runtime->refresh().ok());
  CHECK(runtime->served_version() == 7);
  httplib::Client client("127.0.0.1", runtime->service()->port());
  auto answer = client.Post("/v2/models/logreg/infer", infer_body(), "application/json");
  REQUIRE(answer->status == 200);
  CHECK(json::parse(answer->body)["model_version"] == "7");
  CHECK(runtime->service()->metrics().swaps(serving::SwapCause::load) == 1);

  // Two rounds end before the serving thread looks: only the later model is loaded.
  runtime->on_global_model(releases.version(8));
  runtime->on_global_model(releases.version(9));
  REQUIRE(runtime->refresh().ok());
  CHECK(runtime->served_version() == 9);
  CHECK(runtime->service()->metrics().swaps(serving::SwapCause::global_model) == 1);
}

TEST_CASE("with latest-global a FedBN device serves its own values of the tensors kept local") {
  Releases releases;
  auto runtime = releases.runtime(client::ServeSource::latest_global);
  const auto global = releases.version(7);
  // The device trained its own bias (tensor 1), as a federation keeping it local would have it.
  client::LocalValues local{{1}, std::vector<float>(10, 0.0f)};
  for (std::size_t k = 0; k < 10; ++k) local.values[k] = 0.3f * static_cast<float>(k);
  fs::create_directories(releases.dir / "device");
  REQUIRE(client::write_local_values(client::Agent::local_tensors_path(releases.dir / "device"), global.layout(), local)
              .ok());
  runtime->on_global_model(global);
  REQUIRE(runtime->refresh().ok());
  REQUIRE(runtime->served_version() == 7);

  auto personal = global;
  client::overlay_local(local, local.tensors, personal);
  httplib::Client client("127.0.0.1", runtime->service()->port());
  auto answer = client.Post("/v2/models/logreg/infer", infer_body(), "application/json");
  REQUIRE(answer->status == 200);
  const auto logits = json::parse(answer->body)["outputs"][0]["data"].get<std::vector<float>>();
  const auto expected = own_prediction(personal);
  const auto global_only = own_prediction(global);
  REQUIRE(logits.size() == expected.size());
  for (std::size_t j = 0; j < expected.size(); ++j) CHECK(logits[j] == Approx(expected[j]).margin(1e-5));
  CHECK(logits[9] != Approx(global_only[9]).margin(1e-3));  // the local bias made a difference
}
