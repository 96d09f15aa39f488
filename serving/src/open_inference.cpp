#include "shoal/serving/open_inference.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>
#include <simdjson.h>

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

// Requests are read with simdjson, whose number parsing is ~10 times faster
// than nlohmann's: the pixels of an image are most of a request. Answers are
// small and written with nlohmann.
using simdjson::dom::element;
using simdjson::dom::element_type;

bool is_string(const simdjson::simdjson_result<element>& value) {
  return !value.error() && value.value_unsafe().type() == element_type::STRING;
}
bool is_array(const simdjson::simdjson_result<element>& value) {
  return !value.error() && value.value_unsafe().type() == element_type::ARRAY;
}
bool is_integer(const element& value) {
  return value.type() == element_type::INT64 || value.type() == element_type::UINT64;
}

// Appends the numbers of a flat or nested array to `out`, as `datatype`
// allows. Stops at `limit` values, so a huge body is not expanded whole.
Status flatten(const element& data, bool uint8, std::size_t limit, std::vector<float>& out, const std::string& where,
               int depth = 0) {
  if (data.type() == element_type::ARRAY) {
    if (depth >= kMaxNesting) {
      return make_error(ErrorCode::invalid_argument,
                        "'" + where + "' nests arrays deeper than " + std::to_string(kMaxNesting));
    }
    const simdjson::dom::array items = data.get_array().value_unsafe();  // a copy: the result is a temporary
    for (const element item : items) {
      if (auto status = flatten(item, uint8, limit, out, where, depth + 1); !status) return status;
    }
    return ok_status();
  }
  auto at = [&] { return "'" + where + "[" + std::to_string(out.size()) + "]'"; };
  if (out.size() >= limit) {
    return make_error(ErrorCode::invalid_argument, "'" + where + "' has more values than its shape needs");
  }
  if (!data.is_number()) return make_error(ErrorCode::invalid_argument, at() + " is not a number");
  const double value = data.get_double().value_unsafe();
  if (uint8) {
    if (!is_integer(data) || value < 0 || value > 255) {
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

// A bool among an object's "parameters": nullopt when absent, an error when not a bool.
Result<std::optional<bool>, ApiError> bool_parameter(const element& holder, std::string_view key,
                                                     const std::string& where) {
  const auto parameters = holder["parameters"];
  if (parameters.error() == simdjson::NO_SUCH_FIELD) return std::optional<bool>();
  const auto value = parameters[key];
  if (value.error() == simdjson::NO_SUCH_FIELD) return std::optional<bool>();
  bool flag = false;
  if (value.get(flag) != simdjson::SUCCESS) return bad("'" + where + ".parameters." + std::string(key) + "' is not a bool");
  return std::optional(flag);
}

struct Outputs {
  std::vector<OutputName> names;
  std::vector<OutputName> binary;
};

// The outputs asked for; `all_binary` (binary_data_output) makes each binary.
Result<Outputs, ApiError> decode_outputs(const simdjson::dom::object& request, bool all_binary) {
  const auto listed = request["outputs"];
  if (listed.error() == simdjson::NO_SUCH_FIELD) {
    Outputs defaults{{OutputName::probabilities, OutputName::top_class}, {}};
    if (all_binary) defaults.binary = defaults.names;
    return defaults;
  }
  if (!is_array(listed) || listed.value_unsafe().get_array().value_unsafe().size() == 0) {
    return bad("'outputs' must be a non-empty array of {\"name\": ...}");
  }
  std::vector<OutputName> names, binary_names;
  std::size_t i = 0;
  const simdjson::dom::array outputs = listed.value_unsafe().get_array().value_unsafe();
  for (const element output : outputs) {
    const std::string where = "outputs[" + std::to_string(i++) + "].name";
    const auto name_field = output["name"];  // an error unless output is an object with a name
    if (!is_string(name_field)) {
      return bad("'" + where + "' is missing or not a string");
    }
    const std::string_view name = name_field.value_unsafe().get_string().value_unsafe();
    OutputName chosen;
    if (name == "logits") {
      chosen = OutputName::logits;
    } else if (name == "probabilities") {
      chosen = OutputName::probabilities;
    } else if (name == "class") {
      chosen = OutputName::top_class;
    } else {
      return bad("'" + where + "' is '" + std::string(name.substr(0, 64)) +
                 "'; the outputs are logits, probabilities and class");
    }
    if (std::find(names.begin(), names.end(), chosen) != names.end()) return bad("'" + where + "' names an output twice");
    names.push_back(chosen);
    auto binary = bool_parameter(output, "binary_data", "outputs[" + std::to_string(i - 1) + "]");
    if (!binary) return binary.error();
    if (binary->value_or(all_binary)) binary_names.push_back(chosen);
  }
  return Outputs{std::move(names), std::move(binary_names)};
}

// The input's values from the binary part of the body: `bytes` of FP32 (little-endian) or UINT8.
Status read_binary_input(std::string_view bytes, bool uint8, std::vector<float>& out) {
  static_assert(std::endian::native == std::endian::little, "binary tensor data is little-endian");
  if (uint8) {
    for (unsigned char pixel : bytes) out.push_back(static_cast<float>(pixel / 255.0));
    return ok_status();
  }
  out.resize(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) {
      return make_error(ErrorCode::invalid_argument, "binary value " + std::to_string(i) + " of 'inputs[0]' is not finite");
    }
  }
  return ok_status();
}

}  // namespace

Result<InferRequest, ApiError> decode_infer_request(std::string_view body, const ModelInfo& model,
                                                    std::size_t max_samples, std::optional<std::size_t> json_bytes) {
  std::string_view binary;
  if (json_bytes) {
    if (*json_bytes > body.size()) {
      return bad("Inference-Header-Content-Length is " + std::to_string(*json_bytes) + ", but the body has " +
                 std::to_string(body.size()) + " bytes");
    }
    binary = body.substr(*json_bytes);
    body = body.substr(0, *json_bytes);
  }
  simdjson::dom::parser parser;
  element document;
  if (parser.parse(simdjson::padded_string(body)).get(document) != simdjson::SUCCESS) return bad("the body is not JSON");
  if (document.type() != element_type::OBJECT) return bad("the body is not a JSON object");
  const auto request = document.get_object().value_unsafe();
  InferRequest decoded;
  if (const auto id = request["id"]; id.error() != simdjson::NO_SUCH_FIELD) {
    if (!is_string(id)) return bad("'id' is not a string");
    decoded.id = std::string(id.value_unsafe().get_string().value_unsafe());
    if (decoded.id.size() > 256) return bad("'id' is longer than 256 characters");
  }
  const auto inputs_field = request["inputs"];
  if (!is_array(inputs_field)) return bad("'inputs' is missing or not an array");
  const auto inputs = inputs_field.value_unsafe().get_array().value_unsafe();
  if (inputs.size() != 1) {
    return bad("'inputs' has " + std::to_string(inputs.size()) + " tensors; model '" + model.name +
               "' takes one, named '" + std::string(kInputName) + "'");
  }
  const element input = inputs.at(0).value_unsafe();
  if (input.type() != element_type::OBJECT) return bad("'inputs[0]' is not an object");
  const auto name = input["name"];
  if (!is_string(name) || name.value_unsafe().get_string().value_unsafe() != kInputName) {
    return bad("'inputs[0].name' must be '" + std::string(kInputName) + "'");
  }
  const auto datatype_field = input["datatype"];
  if (!is_string(datatype_field)) return bad("'inputs[0].datatype' is missing");
  const std::string_view datatype = datatype_field.value_unsafe().get_string().value_unsafe();
  if (datatype != "FP32" && datatype != "UINT8") {
    return bad("'inputs[0].datatype' is '" + std::string(datatype.substr(0, 32)) + "'; this model takes FP32 or UINT8");
  }
  const auto shape_field = input["shape"];
  if (!is_array(shape_field) || shape_field.value_unsafe().get_array().value_unsafe().size() < 2) {
    return bad("'inputs[0].shape' must be [N," + shape_text(model.sample_shape).substr(1));
  }
  std::vector<std::int64_t> shape;
  const simdjson::dom::array dims = shape_field.value_unsafe().get_array().value_unsafe();
  for (const element dim : dims) {
    std::int64_t value = 0;
    if (dim.type() != element_type::INT64 || dim.get_int64().get(value) != simdjson::SUCCESS || value < 1 ||
        value > (1 << 28)) {
      return bad("'inputs[0].shape' has a dimension that is not a positive integer");
    }
    shape.push_back(value);
  }
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
  const std::size_t expected = decoded.samples * model.sample_values;
  const bool uint8 = datatype == "UINT8";
  const auto data = input["data"];
  const auto binary_size = input["parameters"]["binary_data_size"];
  decoded.inputs.reserve(expected);
  if (binary_size.error() != simdjson::NO_SUCH_FIELD) {
    std::uint64_t size = 0;
    if (binary_size.get(size) != simdjson::SUCCESS) {
      return bad("'inputs[0].parameters.binary_data_size' is not a byte count");
    }
    if (data.error() != simdjson::NO_SUCH_FIELD) return bad("'inputs[0]' has both data and binary_data_size");
    const std::size_t needed = expected * (uint8 ? 1 : sizeof(float));
    if (size != needed) {
      return bad("'inputs[0].parameters.binary_data_size' is " + std::to_string(size) + "; shape " +
                 shape_text(shape) + " of " + std::string(datatype) + " is " + std::to_string(needed) + " bytes");
    }
    if (binary.size() != size) {
      return bad("the body has " + std::to_string(binary.size()) + " bytes after its JSON; binary_data_size says " +
                 std::to_string(size) + (json_bytes ? "" : " (binary data needs an Inference-Header-Content-Length header)"));
    }
    if (auto status = read_binary_input(binary, uint8, decoded.inputs); !status) return bad(status.error().message);
  } else {
    if (!binary.empty()) {
      return bad("the body has " + std::to_string(binary.size()) +
                 " bytes after its JSON, but 'inputs[0].parameters' has no binary_data_size");
    }
    if (!is_array(data)) return bad("'inputs[0].data' is missing or not an array");
    if (auto status = flatten(data.value_unsafe(), uint8, expected, decoded.inputs, "inputs[0].data"); !status) {
      return bad(status.error().message);
    }
  }
  if (decoded.inputs.size() != expected) {
    return bad("'inputs[0].data' has " + std::to_string(decoded.inputs.size()) + " values; shape " +
               shape_text(shape) + " needs " + std::to_string(expected));
  }
  auto all_binary = bool_parameter(document, "binary_data_output", "request");
  if (!all_binary) return all_binary.error();
  auto outputs = decode_outputs(request, all_binary->value_or(false));
  if (!outputs) return outputs.error();
  decoded.outputs = std::move(outputs->names);
  decoded.binary_outputs = std::move(outputs->binary);
  return decoded;
}

InferResponse encode_infer_response(const InferRequest& request, const ModelInfo& model, std::span<const float> logits) {
  const auto samples = static_cast<std::int64_t>(request.samples);
  const auto classes = static_cast<std::int64_t>(model.outputs);
  json outputs = json::array();
  std::string binary;  // the binary outputs' bytes, in their order
  auto add = [&](json output, const auto& values, OutputName name) {
    if (std::find(request.binary_outputs.begin(), request.binary_outputs.end(), name) != request.binary_outputs.end()) {
      const std::size_t bytes = values.size() * sizeof(values[0]);
      binary.append(reinterpret_cast<const char*>(values.data()), bytes);
      output["parameters"] = {{"binary_data_size", bytes}};
    } else {
      output["data"] = values;
    }
    outputs.push_back(std::move(output));
  };
  for (OutputName name : request.outputs) {
    if (name == OutputName::top_class) {
      std::vector<std::int64_t> top(request.samples);
      for (std::size_t i = 0; i < request.samples; ++i) {
        const auto row = logits.subspan(i * model.outputs, model.outputs);
        top[i] = std::max_element(row.begin(), row.end()) - row.begin();
      }
      add({{"name", "class"}, {"datatype", "INT64"}, {"shape", {samples}}}, top, name);
    } else if (name == OutputName::logits) {
      add({{"name", "logits"}, {"datatype", "FP32"}, {"shape", {samples, classes}}},
          std::vector<float>(logits.begin(), logits.end()), name);
    } else {
      add({{"name", "probabilities"}, {"datatype", "FP32"}, {"shape", {samples, classes}}},
          softmax_rows(logits, model.outputs), name);
    }
  }
  json response = {{"model_name", model.name}, {"model_version", std::to_string(model.version)},
                   {"outputs", std::move(outputs)}};
  if (!request.id.empty()) response["id"] = request.id;
  InferResponse encoded{text_of(response), std::nullopt};
  if (!request.binary_outputs.empty()) {
    encoded.json_bytes = encoded.body.size();
    encoded.body += binary;
  }
  return encoded;
}

std::string encode_error(std::string_view message) { return text_of(json{{"error", message}}); }

std::string encode_server_metadata() {
  return text_of(json{{"name", "shoal"}, {"version", "0.1.0"}, {"extensions", json::array({"binary_tensor_data"})}});
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
