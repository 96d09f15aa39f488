// InferenceService: the device's local inference service. It answers apps
// over HTTP/1.1 in the Open Inference Protocol v2's REST form
// (open_inference.h), batches their requests (batcher.h) and swaps the
// served model between batches (served_model.h). It knows nothing of
// rounds or releases: whoever owns the device's models calls serve().
//
//   GET  /v2/health/live, /v2/health/ready      (no token needed)
//   GET  /v2                                    server metadata
//   GET  /v2/models/{name}[/versions/{v}]       model metadata
//   GET  /v2/models/{name}[/versions/{v}]/ready
//   POST /v2/models/{name}[/versions/{v}]/infer
//   GET  /metrics                               Prometheus text
//
// Errors are JSON, {"error": "..."}, naming the field: 400 a bad request
// (shape, datatype, tensor name), 401 a missing or wrong bearer token, 404
// an unknown model, version or path, 413 a body over the limit (refused
// from its Content-Length, before it is read), 415 a body that is not
// application/json (or application/octet-stream with binary tensor data,
// open_inference.h), 503 with Retry-After when the queue is full or no
// model is loaded yet. The service keeps serving after each.
//
// It binds to loopback unless `allow_remote` is set, and may serve a Unix
// socket (mode 0600) beside the port or instead of it. HTTP is served by
// cpp-httplib, one thread per open connection up to `http_threads` on each.
// With `listen` off it serves no HTTP at all, only predict() in this
// process (an app that links the agent, shoal/shoal.h).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <semaphore>
#include <span>
#include <string>

#include "shoal/base/result.h"
#include "shoal/serving/batcher.h"
#include "shoal/serving/served_model.h"
#include "shoal/serving/service_metrics.h"

namespace shoal::serving {

struct ServiceOptions {
  bool listen = true;                   // false: no HTTP, predict() only
  bool tcp = true;                      // false: no TCP port, the Unix socket only
  std::string host = "127.0.0.1";
  int port = 0;                         // 0: a free port, see InferenceService::port()
  std::filesystem::path unix_socket;    // empty: none
  bool allow_remote = false;            // a host other than loopback is refused without it
  std::string bearer_token;             // empty: none needed
  std::size_t max_body_bytes = 4u << 20;   // 256 mlp samples written out in full fit in 2.4 MB
  std::size_t max_request_samples = 256;
  int http_threads = 64;                // connections served at once, on the port and on the socket each
  std::chrono::seconds retry_after{1};  // what a 503 asks the client to wait
  BatcherOptions batching;
};

// Checks the options; errors name the setting.
Status validate(const ServiceOptions& options);

// The token in `file`: refused unless the file is a regular file of mode
// 0600 or stricter and holds one non-empty line of printable characters.
Result<std::string> read_bearer_token(const std::filesystem::path& file);

// Why predict() gave no answer.
enum class PredictFailure {
  bad_input,   // no samples, too many, or not the served model's sample size
  not_loaded,  // no model is served yet
  busy,        // the queue is full; retry later
  failed,      // the model failed, or the service is stopping
};
struct PredictError {
  PredictFailure failure;
  std::string message;
};

class InferenceService {
 public:
  // Binds and starts serving on threads of its own. Until serve() is
  // called, ready answers 503 and infer requests 503.
  static Result<std::unique_ptr<InferenceService>> start(ServiceOptions options);
  ~InferenceService();  // stops serving; running batches finish

  // From the next batch on, requests are answered by `model`.
  void serve(std::shared_ptr<ServedModel> model, SwapCause cause);
  // The model answering now; null before the first serve().
  std::shared_ptr<ServedModel> serving() const { return slot_.current(); }

  // Runs `samples` samples (`inputs` holds samples x the served model's
  // sample values) through the batcher, as an infer request does, for a
  // caller in this process, and for the infer endpoint. Thread-safe;
  // blocks until its batch has run.
  Result<BatchAnswer, PredictError> predict(std::vector<float> inputs, std::size_t samples);
  // The same, copying the inputs only once they are checked.
  Result<BatchAnswer, PredictError> predict(std::span<const float> inputs, std::size_t samples);

  // 0 without `listen` or `tcp`.
  int port() const { return port_; }
  // Empty without one.
  const std::filesystem::path& unix_socket() const { return options_.unix_socket; }
  // "http://127.0.0.1:PORT"; empty without a port.
  std::string url() const;
  // Where apps reach it, for a log: the URL, the Unix socket, or both.
  std::string addresses() const;
  const ServiceMetrics& metrics() const { return metrics_; }

 private:
  class Http;  // the cpp-httplib server and its routes (inference_service.cpp)
  // Why `values` input values for `samples` samples cannot go to the served model, if they cannot.
  std::optional<PredictError> check_request(std::size_t values, std::size_t samples) const;
  explicit InferenceService(ServiceOptions options);

  ServiceOptions options_;
  ModelSlot slot_;
  ServiceMetrics metrics_;
  DynamicBatcher batcher_;
  // Bodies being decoded at once. Parsing a body takes up to ~8 times its bytes (simdjson's tape holds
  // 16 bytes for a 2-byte number), so with every connection sending the largest body the service holds
  // http_threads bodies but only this many parses.
  std::counting_semaphore<> decoding_{4};
  std::unique_ptr<Http> http_;
  int port_ = 0;
};

}  // namespace shoal::serving
