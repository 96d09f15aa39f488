// The C API (shoal/shoal.h) as an app uses it: an agent made from a config
// file, predicting from a float buffer into the app's, while releases
// install underneath; errors are statuses and words, never exceptions.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "logreg_releases.h"
#include "shoal/inference/prediction_session.h"
#include "shoal/shoal.h"

using namespace shoal;
using shoal::testing::Releases;
namespace fs = std::filesystem;

namespace {

// An app's config: the device's state directory, the model, and optionally more TOML.
fs::path write_config(const Releases& releases, const std::string& more = "") {
  const fs::path file = releases.dir / "app.toml";
  std::ofstream(file) << "[agent]\nname = \"app\"\nstate_dir = \"device\"\n[model]\nname = \"logreg\"\n" << more;
  return file;
}

std::vector<float> two_images() {
  std::vector<float> pixels(2 * 784);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>(i % 89) / 89.0f;
  return pixels;
}

std::vector<float> own_logits(const weights::Weights& weights, const std::vector<float>& inputs) {
  auto model = inference::Model::from_zoo("logreg", 0);
  REQUIRE(model->set_weights(weights).ok());
  auto session = inference::PredictionSession::open(std::move(model).value(), inference::Device{});
  REQUIRE(session.ok());
  return session->predict(inputs, inputs.size() / 784, inference::OutputKind::raw)->values;
}

struct AgentHandle {
  shoal_agent* agent = nullptr;
  ~AgentHandle() { shoal_agent_destroy(agent); }
};

// Version 1 installed on the device, and an agent made from the app's config.
void create_with_release_1(Releases& releases, AgentHandle& handle) {
  releases.publish(1);
  REQUIRE(client::update_from_release(releases.update_options()).ok());
  REQUIRE(shoal_agent_create(write_config(releases).c_str(), SHOAL_MODE_SERVE, nullptr, nullptr, &handle.agent) ==
          SHOAL_OK);
}

}  // namespace

TEST_CASE("an app predicts through the C API from the active release, into its own buffer") {
  Releases releases;
  AgentHandle handle;
  create_with_release_1(releases, handle);
  REQUIRE(handle.agent != nullptr);
  CHECK(std::string(shoal_agent_url(handle.agent)).empty());  // no [serve] port: no HTTP

  shoal_model_info info{};
  REQUIRE(shoal_model_info_get(handle.agent, &info) == SHOAL_OK);
  CHECK(std::string(info.name) == "logreg");
  CHECK(std::string(info.source) == "release");
  CHECK(info.version == 1);
  CHECK(info.sample_values == 784);
  CHECK(info.outputs == 10);
  REQUIRE(info.sample_rank == 3);
  CHECK(info.sample_shape[0] == 1);
  CHECK(info.sample_shape[1] == 28);

  const auto inputs = two_images();
  const auto expected = own_logits(releases.version(1), inputs);
  std::vector<float> logits(20, -1.0f);
  std::uint64_t version = 0;
  REQUIRE(shoal_predict(handle.agent, inputs.data(), 2, SHOAL_OUTPUT_LOGITS, logits.data(), logits.size(), &version) ==
          SHOAL_OK);
  CHECK(version == 1);
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(logits[i] == Approx(expected[i]).margin(1e-5));

  std::vector<float> probabilities(20);
  REQUIRE(shoal_predict(handle.agent, inputs.data(), 2, SHOAL_OUTPUT_PROBABILITIES, probabilities.data(),
                        probabilities.size(), nullptr) == SHOAL_OK);
  for (int row = 0; row < 2; ++row) {
    double sum = 0;
    for (int j = 0; j < 10; ++j) sum += probabilities[row * 10 + j];
    CHECK(sum == Approx(1.0).margin(1e-5));
    // The softmax keeps the order of the logits.
    CHECK((logits[row * 10 + 0] < logits[row * 10 + 1]) == (probabilities[row * 10 + 0] < probabilities[row * 10 + 1]));
  }
}

TEST_CASE("through the C API a release installed by another process is served once the agent runs") {
  Releases releases;
  AgentHandle handle;
  create_with_release_1(releases, handle);
  REQUIRE(shoal_agent_start(handle.agent) == SHOAL_OK);
  CHECK(shoal_agent_start(handle.agent) == SHOAL_INVALID_ARGUMENT);
  CHECK(std::string(shoal_last_error()).find("running already") != std::string::npos);

  releases.publish(2);
  REQUIRE(client::update_from_release(releases.update_options()).ok());  // as `shoal-agent update` would
  // The agent looks at its state directory every second; the test waits for the swap, however slow the machine.
  const auto inputs = two_images();
  std::vector<float> logits(20);
  std::uint64_t version = 0;
  bool answered = true;
  while (answered && version != 2) {
    answered = shoal_predict(handle.agent, inputs.data(), 2, SHOAL_OUTPUT_LOGITS, logits.data(), logits.size(),
                             &version) == SHOAL_OK &&
               (version == 1 || version == 2);
  }
  REQUIRE(answered);
  const auto expected = own_logits(releases.version(2), inputs);
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(logits[i] == Approx(expected[i]).margin(1e-5));
  REQUIRE(shoal_agent_stop(handle.agent) == SHOAL_OK);
  CHECK(shoal_agent_stop(handle.agent) == SHOAL_OK);  // stopped already
  // Predictions go on after a stop, and the agent can start again.
  CHECK(shoal_predict(handle.agent, inputs.data(), 2, SHOAL_OUTPUT_LOGITS, logits.data(), logits.size(), nullptr) ==
        SHOAL_OK);
  CHECK(shoal_agent_start(handle.agent) == SHOAL_OK);
}

TEST_CASE("the C API answers bad calls with a status and words naming what was wrong") {
  Releases releases;
  shoal_agent* agent = reinterpret_cast<shoal_agent*>(&releases);  // must be overwritten
  CHECK(shoal_agent_create((releases.dir / "missing.toml").c_str(), SHOAL_MODE_SERVE, nullptr, nullptr, &agent) !=
        SHOAL_OK);
  CHECK(agent == nullptr);
  CHECK(std::string(shoal_last_error()).find("missing.toml") != std::string::npos);
  CHECK(shoal_agent_create(nullptr, SHOAL_MODE_SERVE, nullptr, nullptr, &agent) == SHOAL_INVALID_ARGUMENT);
  CHECK(shoal_agent_create("x.toml", SHOAL_MODE_SERVE, nullptr, nullptr, nullptr) == SHOAL_INVALID_ARGUMENT);
  CHECK(shoal_agent_create(write_config(releases).c_str(), static_cast<shoal_mode>(7), nullptr, nullptr, &agent) ==
        SHOAL_INVALID_ARGUMENT);
  // Rounds need the keys and data that this config lacks.
  CHECK(shoal_agent_create(write_config(releases).c_str(), SHOAL_MODE_ROUNDS, nullptr, nullptr, &agent) ==
        SHOAL_INVALID_ARGUMENT);
  CHECK(std::string(shoal_last_error()).find("agent.key") != std::string::npos);
  CHECK(shoal_agent_create(write_config(releases, "[serve]\nmax_batch = 0\n").c_str(), SHOAL_MODE_SERVE,
                           nullptr, nullptr, &agent) == SHOAL_INVALID_ARGUMENT);
  CHECK(std::string(shoal_last_error()).find("max_batch") != std::string::npos);

  // Nothing installed yet: not ready, and the words say so.
  AgentHandle handle;
  REQUIRE(shoal_agent_create(write_config(releases).c_str(), SHOAL_MODE_SERVE, nullptr, nullptr, &handle.agent) ==
          SHOAL_OK);
  std::vector<float> inputs = two_images(), outputs(20);
  shoal_model_info info{};
  CHECK(shoal_model_info_get(handle.agent, &info) == SHOAL_NOT_READY);
  CHECK(shoal_predict(handle.agent, inputs.data(), 2, SHOAL_OUTPUT_LOGITS, outputs.data(), 20, nullptr) ==
        SHOAL_NOT_READY);
  CHECK(std::string(shoal_last_error()).find("no model") != std::string::npos);

  releases.publish(1);
  REQUIRE(client::update_from_release(releases.update_options()).ok());
  REQUIRE(shoal_agent_start(handle.agent) == SHOAL_OK);
  while (shoal_model_info_get(handle.agent, &info) != SHOAL_OK) std::this_thread::yield();
  CHECK(shoal_predict(handle.agent, inputs.data(), 2, SHOAL_OUTPUT_LOGITS, outputs.data(), 19, nullptr) ==
        SHOAL_INVALID_ARGUMENT);
  CHECK(std::string(shoal_last_error()).find("room for 19") != std::string::npos);
  CHECK(shoal_predict(handle.agent, inputs.data(), 0, SHOAL_OUTPUT_LOGITS, outputs.data(), 20, nullptr) ==
        SHOAL_INVALID_ARGUMENT);
  CHECK(shoal_predict(handle.agent, inputs.data(), 257, SHOAL_OUTPUT_LOGITS, outputs.data(), 257 * 10, nullptr) ==
        SHOAL_INVALID_ARGUMENT);  // over max_request_samples; the buffer is never read
  CHECK(shoal_predict(handle.agent, nullptr, 2, SHOAL_OUTPUT_LOGITS, outputs.data(), 20, nullptr) ==
        SHOAL_INVALID_ARGUMENT);
  CHECK(shoal_predict(handle.agent, inputs.data(), 2, static_cast<shoal_output>(5), outputs.data(), 20, nullptr) ==
        SHOAL_INVALID_ARGUMENT);
  CHECK(shoal_predict(handle.agent, inputs.data(), 2, SHOAL_OUTPUT_LOGITS, outputs.data(), 20, nullptr) == SHOAL_OK);

  // Each thread has its own last error.
  std::string other_thread;
  std::thread([&] { other_thread = shoal_last_error(); }).join();
  CHECK(other_thread.empty());
  CHECK(std::string(shoal_version()) == "0.1.0");
  shoal_agent_destroy(nullptr);
}
