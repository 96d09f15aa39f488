// The inference service over real HTTP on loopback, answering from a real
// zoo model: the protocol's endpoints, its errors, the token, metrics, and
// batching of concurrent requests.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "served_logreg.h"
#include "shoal/serving/inference_service.h"
#include "temp_dir.h"

using namespace shoal;
using namespace shoal::serving;
using shoal::testing::served_logreg;
using nlohmann::json;

namespace {

std::vector<float> image(int seed) {
  std::vector<float> pixels(784);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>((i * 31 + seed * 17) % 256) / 255.0f;
  return pixels;
}

std::string infer_body(const std::vector<float>& pixels, std::size_t samples = 1) {
  return json{{"inputs", {{{"name", "input"}, {"shape", {samples, 784}}, {"datatype", "FP32"}, {"data", pixels}}}},
              {"outputs", {{{"name", "logits"}}, {{"name", "class"}}}}}
      .dump();
}

std::unique_ptr<InferenceService> start_service(ServiceOptions options = {}) {
  auto service = InferenceService::start(std::move(options));
  REQUIRE(service.ok());
  return std::move(service).value();
}

}  // namespace

TEST_CASE("the service answers the Open Inference Protocol's endpoints over HTTP") {
  auto service = start_service();
  httplib::Client client("127.0.0.1", service->port());

  // Live at once; not ready, and no inference, until a model is served.
  CHECK(client.Get("/v2/health/live")->status == 200);
  auto not_ready = client.Get("/v2/health/ready");
  CHECK(not_ready->status == 503);
  CHECK(not_ready->get_header_value("Retry-After") == "1");
  CHECK(client.Post("/v2/models/logreg/infer", infer_body(image(0)), "application/json")->status == 503);

  auto served = served_logreg(3);
  service->serve(served, SwapCause::load);
  CHECK(client.Get("/v2/health/ready")->status == 200);
  CHECK(json::parse(client.Get("/v2")->body)["name"] == "shoal");
  auto metadata = client.Get("/v2/models/logreg");
  REQUIRE(metadata->status == 200);
  CHECK(json::parse(metadata->body)["versions"] == json({"3"}));
  CHECK(json::parse(client.Get("/v2/models/logreg/ready")->body)["ready"] == true);
  CHECK(client.Get("/v2/models/logreg/versions/3/ready")->status == 200);

  // The answer is the model's own prediction, for a batch of two.
  auto pixels = image(1);
  const auto second = image(2);
  pixels.insert(pixels.end(), second.begin(), second.end());
  auto answer = client.Post("/v2/models/logreg/versions/3/infer", infer_body(pixels, 2), "application/json");
  REQUIRE(answer->status == 200);
  const auto response = json::parse(answer->body);
  CHECK(response["model_name"] == "logreg");
  CHECK(response["model_version"] == "3");
  auto direct_model = inference::Model::from_zoo("logreg", 1);
  auto direct = inference::PredictionSession::open(std::move(direct_model).value(), inference::Device{});
  REQUIRE(direct.ok());
  const auto expected = direct->predict(pixels, 2, inference::OutputKind::raw);
  REQUIRE(expected.ok());
  const auto logits = response["outputs"][0]["data"].get<std::vector<float>>();
  REQUIRE(logits.size() == expected->values.size());
  for (std::size_t i = 0; i < logits.size(); ++i) CHECK(logits[i] == Approx(expected->values[i]).margin(1e-5));
  CHECK(response["outputs"][1]["data"] == json(expected->labels));

  // Answers are never compressed, even for a client that accepts it: on loopback it costs more than it saves.
  auto accepting = client.Post("/v2/models/logreg/infer", {{"Accept-Encoding", "gzip, deflate, br"}},
                               infer_body(image(1)), "application/json");
  REQUIRE(accepting->status == 200);
  CHECK_FALSE(accepting->has_header("Content-Encoding"));
  CHECK(json::parse(accepting->body)["model_version"] == "3");
}

TEST_CASE("bad requests get JSON errors with the right status, and the service keeps serving") {
  ServiceOptions options;
  options.max_body_bytes = 64 * 1024;
  auto service = start_service(options);
  service->serve(served_logreg(1), SwapCause::load);
  httplib::Client client("127.0.0.1", service->port());
  auto error_of = [](const httplib::Result& result) { return json::parse(result->body)["error"].get<std::string>(); };

  auto wrong_shape = client.Post("/v2/models/logreg/infer", infer_body(std::vector<float>(10, 0.0f)), "application/json");
  CHECK(wrong_shape->status == 400);
  CHECK_THAT(error_of(wrong_shape), Catch::Contains("'inputs[0].data' has 10 values"));
  auto unknown = client.Post("/v2/models/resnet/infer", infer_body(image(0)), "application/json");
  CHECK(unknown->status == 404);
  CHECK_THAT(error_of(unknown), Catch::Contains("no model 'resnet'; this service serves 'logreg'"));
  auto old_version = client.Get("/v2/models/logreg/versions/9");
  CHECK(old_version->status == 404);
  CHECK_THAT(error_of(old_version), Catch::Contains("version 9 is not served; version 1 is"));
  auto no_route = client.Get("/v3/anything");
  CHECK(no_route->status == 404);
  CHECK_THAT(error_of(no_route), Catch::Contains("no endpoint GET /v3/anything"));
  auto not_utf8 = client.Get("/v2/models/%FF%FE/ready");  // a path that is not UTF-8 once decoded
  CHECK(not_utf8->status == 404);
  CHECK_THAT(error_of(not_utf8), Catch::Contains("this service serves 'logreg'"));
  auto not_utf8_route = client.Get("/%FF");  // answered by the error handler, outside any route
  CHECK(not_utf8_route->status == 404);
  CHECK_THAT(error_of(not_utf8_route), Catch::Contains("no endpoint GET /"));
  auto wrong_type = client.Post("/v2/models/logreg/infer", infer_body(image(0)), "text/plain");
  CHECK(wrong_type->status == 415);
  CHECK_THAT(error_of(wrong_type), Catch::Contains("Content-Type is 'text/plain'"));
  auto too_big = client.Post("/v2/models/logreg/infer", std::string(100 * 1024, ' '), "application/json");
  CHECK(too_big->status == 413);
  CHECK_THAT(error_of(too_big), Catch::Contains("over the limit of 65536 bytes"));

  // Still serving, and every answer counted by endpoint and status.
  CHECK(client.Post("/v2/models/logreg/infer", infer_body(image(0)), "application/json")->status == 200);
  CHECK(service->metrics().requests("infer", 400) == 1);
  CHECK(service->metrics().requests("infer", 404) == 1);
  CHECK(service->metrics().requests("metadata", 404) == 2);
  CHECK(service->metrics().requests("infer", 413) == 1);
  CHECK(service->metrics().requests("infer", 415) == 1);
  CHECK(service->metrics().requests("infer", 200) == 1);
  const auto metrics = client.Get("/metrics");
  REQUIRE(metrics->status == 200);
  CHECK_THAT(metrics->body, Catch::Contains("shoal_serving_requests_total{endpoint=\"infer\",code=\"413\"} 1"));
  CHECK_THAT(metrics->body, Catch::Contains("shoal_serving_model_version{model=\"logreg\"} 1"));
  CHECK_THAT(metrics->body, Catch::Contains("shoal_serving_infer_latency_seconds_count 1"));
  CHECK_THAT(metrics->body, Catch::Contains("shoal_serving_model_swaps_total{cause=\"load\"} 1"));
}

TEST_CASE("binary tensor data over HTTP: raw floats in, raw logits out, as Triton's clients send them") {
  auto service = start_service();
  service->serve(served_logreg(2), SwapCause::load);
  httplib::Client client("127.0.0.1", service->port());
  CHECK(json::parse(client.Get("/v2")->body)["extensions"] == json({"binary_tensor_data"}));

  const auto pixels = image(4);
  const std::string header =
      json{{"inputs", {{{"name", "input"}, {"shape", {1, 784}}, {"datatype", "FP32"},
                        {"parameters", {{"binary_data_size", 784 * 4}}}}}},
           {"outputs", {{{"name", "logits"}, {"parameters", {{"binary_data", true}}}}}}}
          .dump();
  const std::string body = header + std::string(reinterpret_cast<const char*>(pixels.data()), 784 * 4);
  const httplib::Headers length = {{"Inference-Header-Content-Length", std::to_string(header.size())}};
  auto answer = client.Post("/v2/models/logreg/infer", length, body, "application/octet-stream");
  REQUIRE(answer);
  REQUIRE(answer->status == 200);
  CHECK(answer->get_header_value("Content-Type") == "application/octet-stream");
  const auto json_bytes = std::stoul(answer->get_header_value("Inference-Header-Content-Length"));
  const auto response = json::parse(answer->body.substr(0, json_bytes));
  CHECK(response["model_version"] == "2");
  REQUIRE(answer->body.size() == json_bytes + 10 * sizeof(float));
  std::vector<float> logits(10);
  std::memcpy(logits.data(), answer->body.data() + json_bytes, 10 * sizeof(float));

  // The same request in JSON gets the same logits.
  auto plain = client.Post("/v2/models/logreg/infer", infer_body(pixels), "application/json");
  REQUIRE(plain->status == 200);
  const auto expected = json::parse(plain->body)["outputs"][0]["data"].get<std::vector<float>>();
  for (std::size_t i = 0; i < 10; ++i) CHECK(logits[i] == Approx(expected[i]).margin(1e-6));

  // Octet-stream needs the header; the header must be a byte count.
  auto no_header = client.Post("/v2/models/logreg/infer", body, "application/octet-stream");
  CHECK(no_header->status == 415);
  auto bad_header = client.Post("/v2/models/logreg/infer", {{"Inference-Header-Content-Length", "12x"}}, body,
                                "application/octet-stream");
  CHECK(bad_header->status == 400);
  CHECK_THAT(bad_header->body, Catch::Contains("Inference-Header-Content-Length '12x' is not a byte count"));
}

TEST_CASE("a bearer token guards everything but health, and comes from a private file") {
  shoal::testing::TempDir dir;
  const auto token_file = dir / "token";
  std::ofstream(token_file) << "s3cret-token\n";
  ::chmod(token_file.c_str(), 0644);
  auto loose = read_bearer_token(token_file);
  REQUIRE_FALSE(loose.ok());
  CHECK_THAT(loose.error().message, Catch::Contains("chmod 600"));
  ::chmod(token_file.c_str(), 0600);
  auto token = read_bearer_token(token_file);
  REQUIRE(token.ok());
  CHECK(*token == "s3cret-token");

  ServiceOptions options;
  options.bearer_token = *token;
  auto service = start_service(options);
  service->serve(served_logreg(1), SwapCause::load);
  httplib::Client client("127.0.0.1", service->port());
  CHECK(client.Get("/v2/health/ready")->status == 200);
  auto missing = client.Get("/v2/models/logreg");
  CHECK(missing->status == 401);
  CHECK(missing->get_header_value("WWW-Authenticate") == "Bearer");
  CHECK(client.Get("/v2/models/logreg", {{"Authorization", "Bearer wrong-token!"}})->status == 401);
  CHECK(client.Get("/v2/models/logreg", {{"Authorization", "Bearer s3cret-token"}})->status == 200);
}

TEST_CASE("the service listens on loopback unless told otherwise, and checks its settings") {
  ServiceOptions remote;
  remote.host = "0.0.0.0";
  auto refused = InferenceService::start(remote);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("not a loopback address"));
  ServiceOptions queue;
  queue.batching.max_queued_samples = 4;
  CHECK_THAT(InferenceService::start(queue).error().message, Catch::Contains("max_queued_samples is below"));
  auto first = start_service();
  ServiceOptions same_port;
  same_port.port = first->port();
  CHECK_THAT(InferenceService::start(same_port).error().message, Catch::Contains("cannot listen on 127.0.0.1"));
}

TEST_CASE("concurrent requests are batched, and each gets its own rows back") {
  ServiceOptions options;
  options.batching.max_batch = 8;
  // A batch closes once full, so the long window costs no time when the eight arrive.
  options.batching.max_delay = std::chrono::seconds(1);
  auto service = start_service(options);
  service->serve(served_logreg(1), SwapCause::load);
  auto direct_model = inference::Model::from_zoo("logreg", 1);
  auto direct = inference::PredictionSession::open(std::move(direct_model).value(), inference::Device{});
  REQUIRE(direct.ok());

  constexpr int kClients = 8;
  std::vector<std::thread> clients;
  std::vector<std::int64_t> answered(kClients, -1), expected(kClients, -2);
  for (int c = 0; c < kClients; ++c) expected[c] = direct->predict(image(c), 1)->labels[0];
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", service->port());
      auto result = client.Post("/v2/models/logreg/infer", infer_body(image(c)), "application/json");
      if (result && result->status == 200) answered[c] = json::parse(result->body)["outputs"][1]["data"][0];
    });
  }
  for (auto& thread : clients) thread.join();
  CHECK(answered == expected);
  const auto metrics = service->metrics().prometheus_text(0);
  // Every sample ran once; how they were grouped depends on when the clients' threads ran
  // (batcher_test checks the grouping itself).
  CHECK_THAT(metrics, Catch::Contains("shoal_serving_batch_samples_sum 8\n"));
}
