// The Open Inference Protocol v2 (KServe / Triton), REST form: decoding an
// infer request against the served model and encoding the answers. Pure
// functions of JSON text; the HTTP side is inference_service.h.
//
// A request carries one input tensor, named "input", of shape
// [N, sample shape...] or [N, sample values] with datatype FP32, or UINT8
// (pixel values 0..255, divided by 255 as the training data is). `data` is
// flat or nested, row-major. It may ask for outputs by name:
//   "logits"         FP32 [N, classes], the model's raw outputs
//   "probabilities"  FP32 [N, classes], their softmax
//   "class"          INT64 [N], the top class
// and gets "probabilities" and "class" when it names none.
//
// The binary tensor data extension (Triton's, which KServe adopted) is
// supported both ways: with an Inference-Header-Content-Length header the
// body is that many bytes of JSON followed by raw tensor bytes, little-endian
// and row-major. An input with "parameters": {"binary_data_size": B} has its
// data there rather than in "data". An output asked for with "parameters":
// {"binary_data": true} (or every output, with the request's "parameters":
// {"binary_data_output": true}) is answered the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/base/result.h"
#include "shoal/serving/served_model.h"

namespace shoal::serving {

inline constexpr std::string_view kInputName = "input";

// An HTTP status and a message naming the field that was wrong.
struct ApiError {
  int status = 400;
  std::string message;
  std::string describe() const { return std::to_string(status) + ": " + message; }
};

enum class OutputName { logits, probabilities, top_class };

struct InferRequest {
  std::string id;  // echoed back when given
  std::size_t samples = 0;
  std::vector<float> inputs;  // samples x model.sample_values
  std::vector<OutputName> outputs;
  std::vector<OutputName> binary_outputs;  // those of `outputs` to answer as binary data
};

// Decodes `body` for `model`; refuses more than `max_samples` samples.
// `json_bytes` is the Inference-Header-Content-Length: the body's JSON
// part, the rest being binary tensor data; nullopt: all of it is JSON.
Result<InferRequest, ApiError> decode_infer_request(std::string_view body, const ModelInfo& model,
                                                    std::size_t max_samples,
                                                    std::optional<std::size_t> json_bytes = std::nullopt);

struct InferResponse {
  std::string body;
  // Set when binary outputs follow the JSON: its length, for the
  // Inference-Header-Content-Length header.
  std::optional<std::size_t> json_bytes;
};

// The response to `request`, answered by `model` with `logits` (samples x outputs).
InferResponse encode_infer_response(const InferRequest& request, const ModelInfo& model, std::span<const float> logits);

// {"error": message}
std::string encode_error(std::string_view message);
// GET /v2: the server's name, version and extensions.
std::string encode_server_metadata();
// GET /v2/models/{name}/ready: {"name": ..., "ready": true}
std::string encode_model_ready(const ModelInfo& model);
// GET /v2/models/{name}: versions, platform, input and outputs.
std::string encode_model_metadata(const ModelInfo& model);

}  // namespace shoal::serving
