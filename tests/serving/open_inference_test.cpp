// Decoding infer requests against a model's shape, and encoding answers.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "shoal/serving/open_inference.h"

using namespace shoal;
using namespace shoal::serving;
using nlohmann::json;

namespace {

ModelInfo image_model() {
  ModelInfo model;
  model.name = "mlp";
  model.version = 7;
  model.source = "release";
  model.sample_shape = {1, 2, 2};
  model.sample_values = 4;
  model.outputs = 3;
  return model;
}

json request_with(json shape, json data, std::string datatype = "FP32") {
  return {{"inputs", {{{"name", "input"}, {"shape", shape}, {"datatype", datatype}, {"data", data}}}}};
}

std::string error_of(const json& body, std::size_t max_samples = 16) {
  auto decoded = decode_infer_request(body.dump(), image_model(), max_samples);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.error().status == 400);
  return decoded.error().message;
}

}  // namespace

TEST_CASE("an infer request decodes flat or nested data in either input shape") {
  const auto model = image_model();
  auto flat = decode_infer_request(request_with({2, 1, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}).dump(), model, 16);
  REQUIRE(flat.ok());
  CHECK(flat->samples == 2);
  CHECK(flat->inputs == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(flat->outputs == std::vector<OutputName>{OutputName::probabilities, OutputName::top_class});

  auto nested = decode_infer_request(request_with({2, 4}, {{1, 2, 3, 4}, {5, 6, 7, 8}}).dump(), model, 16);
  REQUIRE(nested.ok());
  CHECK(nested->inputs == flat->inputs);

  auto pixels = decode_infer_request(request_with({1, 4}, {0, 51, 255, 102}, "UINT8").dump(), model, 16);
  REQUIRE(pixels.ok());
  CHECK(pixels->inputs == std::vector<float>{0.0f, 0.2f, 1.0f, 0.4f});
}

TEST_CASE("a bad infer request is refused with the field named") {
  CHECK_THAT(error_of(json::parse("[1]")), Catch::Contains("not a JSON object"));
  CHECK_THAT(decode_infer_request("{not json", image_model(), 16).error().message, Catch::Contains("not JSON"));
  CHECK_THAT(error_of({{"inputs", 3}}), Catch::Contains("'inputs'"));
  auto wrong_name = request_with({1, 4}, {1, 2, 3, 4});
  wrong_name["inputs"][0]["name"] = "pixels";
  CHECK_THAT(error_of(wrong_name), Catch::Contains("'inputs[0].name' must be 'input'"));
  CHECK_THAT(error_of(request_with({1, 4}, {1, 2, 3, 4}, "FP16")), Catch::Contains("'inputs[0].datatype' is 'FP16'"));
  CHECK_THAT(error_of(request_with({1, 5}, {1, 2, 3, 4, 5})), Catch::Contains("'inputs[0].shape' is [1,5]"));
  CHECK_THAT(error_of(request_with({1, 4}, {1, 2, 3})), Catch::Contains("'inputs[0].data' has 3 values"));
  CHECK_THAT(error_of(request_with({1, 4}, {1, 2, 3, 4, 5})), Catch::Contains("more values than its shape"));
  CHECK_THAT(error_of(request_with({1, 4}, {1, "x", 3, 4})), Catch::Contains("'inputs[0].data[1]' is not a number"));
  CHECK_THAT(error_of(request_with({1, 4}, {1, 2, 300, 4}, "UINT8")), Catch::Contains("'inputs[0].data[2]' is not a UINT8"));
  CHECK_THAT(error_of(request_with({1, 4}, {1, 2, 3.5, 4}, "UINT8")), Catch::Contains("'inputs[0].data[2]'"));
  CHECK_THAT(error_of(request_with({0, 4}, json::array())), Catch::Contains("not a positive integer"));
  CHECK_THAT(error_of(request_with({17, 4}, json::array())), Catch::Contains("at most 16 a request"));
  json deep = 1;
  for (int i = 0; i < 20; ++i) deep = json::array({deep});
  CHECK_THAT(error_of(request_with({1, 4}, deep)), Catch::Contains("nests arrays deeper"));
  auto two = request_with({1, 4}, {1, 2, 3, 4});
  two["inputs"].push_back(two["inputs"][0]);
  CHECK_THAT(error_of(two), Catch::Contains("has 2 tensors"));
  auto unknown_output = request_with({1, 4}, {1, 2, 3, 4});
  unknown_output["outputs"] = {{{"name", "embedding"}}};
  CHECK_THAT(error_of(unknown_output), Catch::Contains("'outputs[0].name' is 'embedding'"));
  auto twice = request_with({1, 4}, {1, 2, 3, 4});
  twice["outputs"] = {{{"name", "class"}}, {{"name", "class"}}};
  CHECK_THAT(error_of(twice), Catch::Contains("names an output twice"));
}

TEST_CASE("an infer response carries the outputs asked for, the version and the id") {
  const auto model = image_model();
  auto body = request_with({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  body["id"] = "req-1";
  body["outputs"] = {{{"name", "logits"}}, {{"name", "probabilities"}}, {{"name", "class"}}};
  auto request = decode_infer_request(body.dump(), model, 16);
  REQUIRE(request.ok());
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 3.0f, -1.0f, 0.5f};
  const auto encoded = encode_infer_response(*request, model, logits);
  CHECK_FALSE(encoded.json_bytes);  // all JSON
  const auto response = json::parse(encoded.body);
  CHECK(response["model_name"] == "mlp");
  CHECK(response["model_version"] == "7");
  CHECK(response["id"] == "req-1");
  const auto& outputs = response["outputs"];
  REQUIRE(outputs.size() == 3);
  CHECK(outputs[0]["name"] == "logits");
  CHECK(outputs[0]["shape"] == json({2, 3}));
  CHECK(outputs[0]["data"].get<std::vector<float>>() == logits);
  const auto probabilities = outputs[1]["data"].get<std::vector<double>>();
  CHECK(probabilities[1] == Approx(std::exp(2.0) / (1 + std::exp(2.0) + std::exp(1.0))).epsilon(1e-6));
  CHECK(probabilities[3] + probabilities[4] + probabilities[5] == Approx(1.0).epsilon(1e-6));
  CHECK(outputs[2]["datatype"] == "INT64");
  CHECK(outputs[2]["data"] == json({1, 0}));
}

namespace {

// A body in the binary tensor extension's form: the JSON, then `tail`.
std::string with_binary(const json& header, const std::string& tail) { return header.dump() + tail; }

std::string bytes_of(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

}  // namespace

TEST_CASE("binary tensor data: an input after the JSON, and outputs asked for as binary") {
  const auto model = image_model();
  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8};
  json header = {{"inputs", {{{"name", "input"}, {"shape", {2, 4}}, {"datatype", "FP32"},
                              {"parameters", {{"binary_data_size", 32}}}}}},
                 {"outputs", {{{"name", "logits"}, {"parameters", {{"binary_data", true}}}}, {{"name", "class"}}}}};
  auto request = decode_infer_request(with_binary(header, bytes_of(values)), model, 16, header.dump().size());
  REQUIRE(request.ok());
  CHECK(request->inputs == values);
  CHECK(request->binary_outputs == std::vector<OutputName>{OutputName::logits});

  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 3.0f, -1.0f, 0.5f};
  const auto encoded = encode_infer_response(*request, model, logits);
  REQUIRE(encoded.json_bytes);
  const auto response = json::parse(encoded.body.substr(0, *encoded.json_bytes));
  CHECK(response["outputs"][0]["parameters"]["binary_data_size"] == 24);
  CHECK_FALSE(response["outputs"][0].contains("data"));
  CHECK(response["outputs"][1]["data"] == json({1, 0}));  // class stays JSON
  CHECK(encoded.body.substr(*encoded.json_bytes) == bytes_of(logits));

  // UINT8 pixels as bytes; binary_data_output makes every output binary.
  header = {{"inputs", {{{"name", "input"}, {"shape", {1, 4}}, {"datatype", "UINT8"},
                         {"parameters", {{"binary_data_size", 4}}}}}},
            {"parameters", {{"binary_data_output", true}}}};
  auto pixels = decode_infer_request(with_binary(header, std::string("\x00\x33\xff\x66", 4)), model, 16,
                                     header.dump().size());
  REQUIRE(pixels.ok());
  CHECK(pixels->inputs == std::vector<float>{0.0f, 0.2f, 1.0f, 0.4f});
  CHECK(pixels->binary_outputs == pixels->outputs);
  const auto all_binary = encode_infer_response(*pixels, model, std::vector<float>{0.0f, 2.0f, 1.0f});
  REQUIRE(all_binary.json_bytes);
  CHECK(all_binary.body.size() == *all_binary.json_bytes + 3 * sizeof(float) + sizeof(std::int64_t));
  std::int64_t top = -1;
  std::memcpy(&top, all_binary.body.data() + all_binary.body.size() - sizeof top, sizeof top);
  CHECK(top == 1);
}

TEST_CASE("binary tensor data that does not match its JSON is refused with the reason") {
  const auto model = image_model();
  const json header = {{"inputs", {{{"name", "input"}, {"shape", {2, 4}}, {"datatype", "FP32"},
                                    {"parameters", {{"binary_data_size", 32}}}}}}};
  const auto length = header.dump().size();
  const auto values = bytes_of({1, 2, 3, 4, 5, 6, 7, 8});
  auto error = [&](const std::string& body, std::optional<std::size_t> json_bytes) {
    auto decoded = decode_infer_request(body, model, 16, json_bytes);
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.error().status == 400);
    return decoded.error().message;
  };
  CHECK_THAT(error(with_binary(header, values.substr(0, 31)), length), Catch::Contains("31 bytes after its JSON"));
  CHECK_THAT(error(with_binary(header, values), length + 100), Catch::Contains("Inference-Header-Content-Length is"));
  CHECK_THAT(error(with_binary(header, values), std::nullopt), Catch::Contains("not JSON"));
  CHECK_THAT(error(header.dump(), std::nullopt), Catch::Contains("needs an Inference-Header-Content-Length"));
  json wrong_size = header;
  wrong_size["inputs"][0]["parameters"]["binary_data_size"] = 16;
  CHECK_THAT(error(with_binary(wrong_size, values), wrong_size.dump().size()), Catch::Contains("is 32 bytes"));
  json both = header;
  both["inputs"][0]["data"] = {1};
  CHECK_THAT(error(with_binary(both, values), both.dump().size()), Catch::Contains("both data and binary_data_size"));
  CHECK_THAT(error(request_with({1, 4}, {1, 2, 3, 4}).dump() + "xx", request_with({1, 4}, {1, 2, 3, 4}).dump().size()),
             Catch::Contains("no binary_data_size"));
  const float nan = std::nanf("");
  CHECK_THAT(error(with_binary(header, bytes_of({1, 2, nan, 4, 5, 6, 7, 8})), length), Catch::Contains("not finite"));
  json bad_flag = request_with({1, 4}, {1, 2, 3, 4});
  bad_flag["outputs"] = {{{"name", "class"}, {"parameters", {{"binary_data", "yes"}}}}};
  CHECK_THAT(error(bad_flag.dump(), std::nullopt), Catch::Contains("'outputs[0].parameters.binary_data' is not a bool"));
}

TEST_CASE("model metadata names the input and outputs with a variable batch") {
  const auto metadata = json::parse(encode_model_metadata(image_model()));
  CHECK(metadata["name"] == "mlp");
  CHECK(metadata["versions"] == json({"7"}));
  CHECK(metadata["inputs"][0]["shape"] == json({-1, 1, 2, 2}));
  CHECK(metadata["outputs"][2]["name"] == "class");
}
