#include "shoal/serving/open_inference.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace shoal::serving {
namespace {

using nlohmann::json;

ApiError bad(std::string message) { return ApiError{400, std::move(message)}; }

// JSON text in which bytes that are not UTF-8 (from a path or a message quoting one) become U+FFFD,
// where a plain dump() would throw on them.
std::string text_of(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  return text_of(json(shape));
}

constexpr int kMaxNesting = 8;

// Appends the numbers of a flat or nested array to `out`, as `datatype`
// allows. Stops at `limit` values, so a huge body is not expanded whole.
Status flatten(const json& data, bool uint8, std::size_t limit, std::vector<float>& out, const std::string& where,
               int depth = 0) {
  if (data.is_array()) {
    if (depth >= kMaxNesting) {
      return make_error(ErrorCode::invalid_argument,
                        "'" + where + "' nests arrays deeper than " + std::to_string(kMaxNesting));
    }
    for (const auto& element : data) {
      if (auto status = flatten(element, uint8, limit, out, where, depth + 1); !status) return status;
    }
    return ok_status();
  }
  auto at = [&] { return "'" + where + "[" + std::to_string(out.size()) + "]'"; };
  if (out.size() >= limit) {
    return make_error(ErrorCode::invalid_argument, "'" + where + "' has more values than its shape needs");
  }
  if (!data.is_number()) return make_error(ErrorCode::invalid_argument, at() + " is not a number");
  const double value = data.get<double>();
  if (uint8) {
    if (!data.is_number_integer() || value < 0 || value > 255) {
      return make_error(ErrorCode::invalid_argument, at() + " is not a UINT8 value (0 to 255)");
    }
    out.push_back(static_cast<float>(value / 255.0));
  } else {
    if (!std::isfinite(value) || std::abs(value) > 3.4e38) {
      return make_error(ErrorCode::invalid_argument, at() + " is not a finite FP32 value");
    }
    out.push_back(static_cast<float>(value));
  }
  return ok_status();
}

Result<std::vector<OutputName>, ApiError> decode_outputs(const json& request) {
  if (!request.contains("outputs")) return std::vector<OutputName>{OutputName::probabilities, OutputName::top_class};
  const json& outputs = request["outputs"];
  if (!outputs.is_array() || outputs.empty()) return bad("'outputs' must be a non-empty array of {\"name\": ...}");
  std::vector<OutputName> names;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const std::string where = "outputs[" + std::to_string(i) + "].name";
    if (!outputs[i].is_object() || !outputs[i].contains("name") || !outputs[i]["name"].is_string()) {
      return bad("'" + where + "' is missing or not a string");
    }
    const auto name = outputs[i]["name"].get<std::string>();
    OutputName output;
    if (name == "logits") {
      output = OutputName::logits;
    } else if (name == "probabilities") {
      output = OutputName::probabilities;
    } else if (name == "class") {
      output = OutputName::top_class;
    } else {
      return bad("'" + where + "' is '" + name.substr(0, 64) + "'; the outputs are logits, probabilities and class");
    }
    if (std::find(names.begin(), names.end(), output) != names.end()) return bad("'" + where + "' names an output twice");
    names.push_back(output);
  }
  return names;
}

}  // namespace

Result<InferRequest, ApiError> decode_infer_request(std::string_view body, const ModelInfo& model,
                                                    std::size_t max_samples) {
  const json request = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return bad("the body is not JSON");
  if (!request.is_object()) return bad("the body is not a JSON object");
  InferRequest decoded;
  if (request.contains("id")) {
    if (!request["id"].is_string()) return bad("'id' is not a string");
    decoded.id = request["id"].get<std::string>();
    if (decoded.id.size() > 256) return bad("'id' is longer than 256 characters");
  }
  if (!request.contains("inputs") || !request["inputs"].is_array()) return bad("'inputs' is missing or not an array");
  const json& inputs = request["inputs"];
  if (inputs.size() != 1) {
    return bad("'inputs' has " + std::to_string(inputs.size()) + " tensors; model '" + model.name +
               "' takes one, named '" + std::string(kInputName) + "'");
  }
  const json& input = inputs[0];
  if (!input.is_object()) return bad("'inputs[0]' is not an object");
  if (!input.contains("name") || !input["name"].is_string() || input["name"].get<std::string>() != kInputName) {
    return bad("'inputs[0].name' must be '" + std::string(kInputName) + "'");
  }
  if (!input.contains("datatype") || !input["datatype"].is_string()) return bad("'inputs[0].datatype' is missing");
  const auto datatype = input["datatype"].get<std::string>();
  if (datatype != "FP32" && datatype != "UINT8") {
    return bad("'inputs[0].datatype' is '" + datatype.substr(0, 32) + "'; this model takes FP32 or UINT8");
  }
  if (!input.contains("shape") || !input["shape"].is_array() || input["shape"].size() < 2) {
    return bad("'inputs[0].shape' must be [N," + shape_text(model.sample_shape).substr(1));
  }
  std::vector<std::int64_t> shape;
  for (const auto& dim : input["shape"]) {
    if (!dim.is_number_integer() || dim.get<std::int64_t>() < 1 || dim.get<std::int64_t>() > (1 << 28)) {
      return bad("'inputs[0].shape' has a dimension that is not a positive integer");
    }
    shape.push_back(dim.get<std::int64_t>());
  }
  std::int64_t per_sample = 1;
  for (std::size_t i = 1; i < shape.size() && per_sample <= (1 << 28); ++i) per_sample *= shape[i];
  const std::vector<std::int64_t> flat_shape = {static_cast<std::int64_t>(model.sample_values)};
  const std::vector<std::int64_t> sample_shape(shape.begin() + 1, shape.end());
  if (sample_shape != model.sample_shape && sample_shape != flat_shape) {
    return bad("'inputs[0].shape' is " + shape_text(shape) + "; model '" + model.name + "' takes [N," +
               shape_text(model.sample_shape).substr(1) + " or [N," + std::to_string(model.sample_values) + "]");
  }
  decoded.samples = static_cast<std::size_t>(shape[0]);
  if (decoded.samples > max_samples) {
    return bad("'inputs[0].shape' asks for " + std::to_string(decoded.samples) + " samples; at most " +
               std::to_string(max_samples) + " a request");
  }
  if (!input.contains("data") || !input["data"].is_array()) return bad("'inputs[0].data' is missing or not an array");
  const std::size_t expected = decoded.samples * model.sample_values;
  decoded.inputs.reserve(expected);
  if (auto status = flatten(input["data"], datatype == "UINT8", expected, decoded.inputs, "inputs[0].data"); !status) {
    return bad(status.error().message);
  }
  if (decoded.inputs.size() != expected) {
    return bad("'inputs[0].data' has " + std::to_string(decoded.inputs.size()) + " values; shape " +
               shape_text(shape) + " needs " + std::to_string(expected));
  }
  auto outputs = decode_outputs(request);
  if (!outputs) return outputs.error();
  decoded.outputs = std::move(outputs).value();
  return decoded;
}

std::string encode_infer_response(const InferRequest& request, const ModelInfo& model, std::span<const float> logits) {
  const auto samples = static_cast<std::int64_t>(request.samples);
  const auto classes = static_cast<std::int64_t>(model.outputs);
  json outputs = json::array();
  for (OutputName name : request.outputs) {
    json output;
    if (name == OutputName::top_class) {
      std::vector<std::int64_t> top(request.samples);
      for (std::size_t i = 0; i < request.samples; ++i) {
        const auto row = logits.subspan(i * model.outputs, model.outputs);
        top[i] = std::max_element(row.begin(), row.end()) - row.begin();
      }
      output = {{"name", "class"}, {"datatype", "INT64"}, {"shape", {samples}}, {"data", top}};
    } else if (name == OutputName::logits) {
      output = {{"name", "logits"}, {"datatype", "FP32"}, {"shape", {samples, classes}},
                {"data", std::vector<float>(logits.begin(), logits.end())}};
    } else {
      auto probabilities = softmax_rows(logits, model.outputs);
      output = {{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {samples, classes}},
                {"data", std::move(probabilities)}};
    }
    outputs.push_back(std::move(output));
  }
  json response = {{"model_name", model.name}, {"model_version", std::to_string(model.version)},
                   {"outputs", std::move(outputs)}};
  if (!request.id.empty()) response["id"] = request.id;
  return text_of(response);
}

std::string encode_error(std::string_view message) { return text_of(json{{"error", message}}); }

std::string encode_server_metadata() {
  return text_of(json{{"name", "shoal"}, {"version", "0.1.0"}, {"extensions", json::array()}});
}

std::string encode_model_ready(const ModelInfo& model) { return text_of(json{{"name", model.name}, {"ready", true}}); }

std::string encode_model_metadata(const ModelInfo& model) {
  std::vector<std::int64_t> input_shape = {-1};
  input_shape.insert(input_shape.end(), model.sample_shape.begin(), model.sample_shape.end());
  const auto classes = static_cast<std::int64_t>(model.outputs);
  return text_of(json{{"name", model.name},
              {"versions", {std::to_string(model.version)}},
              {"platform", "libtorch"},
              {"parameters", {{"source", model.source}}},
              {"inputs", {{{"name", kInputName}, {"datatype", "FP32"}, {"shape", input_shape}}}},
              {"outputs",
               {{{"name", "logits"}, {"datatype", "FP32"}, {"shape", {-1, classes}}},
                {{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {-1, classes}}},
                {{"name", "class"}, {"datatype", "INT64"}, {"shape", {-1}}}}}});
}

}  // namespace shoal::serving
