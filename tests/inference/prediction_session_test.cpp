#include "shoal/inference/prediction_session.h"

#include <catch2/catch.hpp>

#include <numeric>
#include <random>

#include "random_images.h"

using namespace shoal;
using namespace shoal::inference;

namespace {

std::vector<float> random_images(std::size_t count) { return testing::random_images(count, 4); }

}  // namespace

TEST_CASE("a prediction session returns a probability distribution per sample and its argmax") {
  auto session = PredictionSession::open(*Model::from_zoo("cnn", 1), *resolve_device("cpu"));
  REQUIRE(session);
  const auto images = random_images(5);
  auto predictions = session->predict(images, 5);
  REQUIRE(predictions);
  CHECK(predictions->batch == 5);
  CHECK(predictions->outputs == 10);
  for (std::size_t i = 0; i < 5; ++i) {
    const auto row = predictions->row(i);
    CHECK(std::accumulate(row.begin(), row.end(), 0.0) == Approx(1.0).epsilon(1e-5));
    CHECK(predictions->labels[i] == std::max_element(row.begin(), row.end()) - row.begin());
  }
}

TEST_CASE("a batch gives the same answers as its samples one at a time") {
  auto session = *PredictionSession::open(*Model::from_zoo("mlp", 1), *resolve_device("cpu"));
  const auto images = random_images(3);
  auto batch = *session.predict(images, 3, OutputKind::raw);
  for (std::size_t i = 0; i < 3; ++i) {
    auto single = *session.predict(std::span(images).subspan(i * 784, 784), 1, OutputKind::raw);
    for (std::size_t c = 0; c < 10; ++c) CHECK(single.values[c] == Approx(batch.row(i)[c]).margin(1e-5));
  }
}

TEST_CASE("an input of the wrong size is refused with the expected shape") {
  auto session = *PredictionSession::open(*Model::from_zoo("logreg", 1), *resolve_device("cpu"));
  const auto images = random_images(2);
  auto short_input = session.predict(std::span(images).first(1000), 2);
  REQUIRE_FALSE(short_input);
  CHECK(short_input.error().message == "input has 1000 values; a batch of 2 samples of shape [1, 28, 28] needs 1568");
  CHECK_FALSE(session.predict(images, 0));
}

TEST_CASE("a sample shape the model cannot take is an error, not a crash") {
  auto session = PredictionSession::open(*Model::from_zoo("cnn", 1), *resolve_device("cpu"), {3, 32, 32});
  REQUIRE_FALSE(session);
  CHECK(session.error().message.find("[1, 3, 32, 32]") != std::string::npos);
}

TEST_CASE("a TorchScript model predicts once told its sample shape") {
  auto without_shape = PredictionSession::open(*Model::load_torchscript(SHOAL_TEST_FIXTURES "/tiny.pt"),
                                               *resolve_device("cpu"));
  REQUIRE_FALSE(without_shape);
  CHECK(without_shape.error().message.find("pass the sample shape") != std::string::npos);
  auto session = PredictionSession::open(*Model::load_torchscript(SHOAL_TEST_FIXTURES "/tiny.pt"),
                                         *resolve_device("cpu"), {1, 4, 4});
  REQUIRE(session);
  const std::vector<float> inputs(2 * 16, 0.25f);
  auto predictions = session->predict(inputs, 2);
  REQUIRE(predictions);
  CHECK(predictions->outputs == 3);
}
