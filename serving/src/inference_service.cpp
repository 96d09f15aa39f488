#include "shoal/serving/inference_service.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <charconv>
#include <fstream>
#include <thread>

#include <httplib.h>

#include "shoal/crypto/secret.h"
#include "shoal/serving/open_inference.h"
#include "connection_pool.h"
#include "http_listener.h"

namespace shoal::serving {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kJson = "application/json";
// What answers say. On loopback, compressing an answer costs more than sending it; cpp-httplib compresses
// "application/json" for any client that accepts gzip or brotli (as Python's requests does), but not this.
constexpr const char* kJsonAnswer = "application/json; charset=utf-8";
constexpr const char* kOctets = "application/octet-stream";
// The length of a body's JSON part, when binary tensor data follows it.
constexpr const char* kJsonLengthHeader = "Inference-Header-Content-Length";

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void answer_error(httplib::Response& response, int status, std::string_view message) {
  response.status = status;
  response.set_content(encode_error(message), kJsonAnswer);
}

// The endpoint a path belongs to, for the request counters.
std::string endpoint_of(const std::string& path) {
  if (path.rfind("/v2/health/", 0) == 0) return "health";
  if (path == "/metrics") return "metrics";
  if (path.size() >= 6 && path.compare(path.size() - 6, 6, "/infer") == 0) return "infer";
  if (path.rfind("/v2", 0) == 0) return "metadata";
  return "other";
}

}  // namespace

class InferenceService::Http {
 public:
  // One cpp-httplib server for each place served: the TCP port, the Unix socket.
  struct Listener {
    std::unique_ptr<HttpListener> server;
    std::thread thread;
    std::atomic<bool> returned{false};
  };
  std::vector<std::unique_ptr<Listener>> listeners;

  // The settings and routes every listener shares.
  static void configure(httplib::Server& server, InferenceService& self);
};

Status validate(const ServiceOptions& options) {
  if (options.listen && !options.allow_remote && !is_loopback(options.host)) {
    return make_error(ErrorCode::invalid_argument,
                      "serve.host '" + options.host + "' is not a loopback address; set allow_remote to serve beyond this device");
  }
  if (options.listen && !options.tcp && options.unix_socket.empty()) {
    return make_error(ErrorCode::invalid_argument, "serve: neither serve.port nor serve.unix_socket is set");
  }
  if (!options.unix_socket.empty()) {
    if (auto problem = unix_socket_path_problem(options.unix_socket)) {
      return make_error(ErrorCode::invalid_argument, "serve.unix_socket '" + options.unix_socket.string() + "': " + *problem);
    }
  }
  if (options.port < 0 || options.port > 65535) {
    return make_error(ErrorCode::invalid_argument, "serve.port " + std::to_string(options.port) + " is not 0 to 65535");
  }
  if (options.max_body_bytes < 1024) return make_error(ErrorCode::invalid_argument, "serve.max_body_bytes is below 1024");
  if (options.max_request_samples < 1) {
    return make_error(ErrorCode::invalid_argument, "serve.max_request_samples must be at least 1");
  }
  if (options.http_threads < 1 || options.http_threads > 4096) {
    return make_error(ErrorCode::invalid_argument, "serve.http_threads must be 1 to 4096");
  }
  if (options.batching.max_batch < 1) return make_error(ErrorCode::invalid_argument, "serve.max_batch must be at least 1");
  if (options.batching.max_delay.count() < 0 || options.batching.max_delay > std::chrono::seconds(1)) {
    return make_error(ErrorCode::invalid_argument, "serve.max_delay_us must be 0 to 1000000");
  }
  if (options.batching.max_queued_samples < options.batching.max_batch) {
    return make_error(ErrorCode::invalid_argument, "serve.max_queued_samples is below serve.max_batch");
  }
  return ok_status();
}

Result<std::string> read_bearer_token(const std::filesystem::path& file) {
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) {
    return make_error(ErrorCode::not_found, "token file '" + file.string() + "' cannot be read");
  }
  if (!S_ISREG(info.st_mode)) return make_error(ErrorCode::invalid_argument, "token file '" + file.string() + "' is not a file");
  if ((info.st_mode & 077) != 0) {
    return make_error(ErrorCode::permission, "token file '" + file.string() +
                                                 "' may be read by other users; make it mode 0600 (chmod 600)");
  }
  std::ifstream in(file);
  std::string token;
  std::getline(in, token);
  if (!token.empty() && token.back() == '\r') token.pop_back();
  if (token.empty() || token.size() > 4096) {
    return make_error(ErrorCode::invalid_argument, "token file '" + file.string() + "' holds no token on its first line");
  }
  for (char c : token) {
    if (c <= ' ' || c > '~') {
      return make_error(ErrorCode::invalid_argument,
                        "token file '" + file.string() + "': the token has a space or a non-printable character");
    }
  }
  return token;
}

InferenceService::InferenceService(ServiceOptions options)
    : options_(std::move(options)),
      batcher_(slot_, options_.batching, [this](std::size_t samples) { metrics_.observe_batch(samples); }),
      http_(std::make_unique<Http>()) {}

InferenceService::~InferenceService() {
  for (auto& listener : http_->listeners) {
    if (!listener->thread.joinable()) continue;
    // stop() does nothing until the listener thread has begun listening; a stop before that would be lost
    // and the join would never return.
    while (!listener->server->is_running() && !listener->returned.load()) std::this_thread::yield();
    listener->server->stop();
    listener->thread.join();
  }
}

void InferenceService::serve(std::shared_ptr<ServedModel> model, SwapCause cause) {
  const auto info = model->shared_info();
  slot_.set(std::move(model));
  metrics_.count_swap(cause, *info);
}

std::string InferenceService::url() const {
  if (port_ == 0) return "";
  const bool v6 = options_.host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(port_);
}

std::string InferenceService::addresses() const {
  std::string socket = options_.unix_socket.empty() ? "" : "unix socket " + options_.unix_socket.string();
  if (port_ == 0) return socket;
  return socket.empty() ? url() : url() + " and " + socket;
}

std::optional<PredictError> InferenceService::check_request(std::size_t values, std::size_t samples) const {
  auto model = slot_.current();
  if (!model) return PredictError{PredictFailure::not_loaded, "no model is loaded yet"};
  const auto& info = model->info();
  if (samples < 1 || samples > options_.max_request_samples) {
    return PredictError{PredictFailure::bad_input, "samples is " + std::to_string(samples) + "; give 1 to " +
                                                       std::to_string(options_.max_request_samples)};
  }
  if (values != samples * info.sample_values) {
    return PredictError{PredictFailure::bad_input,
                        std::to_string(values) + " input values for " + std::to_string(samples) + " samples; " +
                            info.name + " takes " + std::to_string(info.sample_values) + " values a sample"};
  }
  return std::nullopt;
}

Result<BatchAnswer, PredictError> InferenceService::predict(std::span<const float> inputs, std::size_t samples) {
  // Checked before the copy: a caller's buffer is only as long as its samples of the right size.
  if (auto refused = check_request(inputs.size(), samples)) return *refused;
  return predict(std::vector<float>(inputs.begin(), inputs.end()), samples);
}

Result<BatchAnswer, PredictError> InferenceService::predict(std::vector<float> inputs, std::size_t samples) {
  if (auto refused = check_request(inputs.size(), samples)) return *refused;
  auto pending = batcher_.submit(std::move(inputs), samples);
  if (!pending) return PredictError{PredictFailure::busy, "the inference queue is full; retry later"};
  auto answer = pending->get();
  if (!answer) {
    const bool unloaded = answer.error().code == ErrorCode::not_found;
    if (!unloaded) metrics_.count_inference_error();
    return PredictError{unloaded ? PredictFailure::not_loaded : PredictFailure::failed, answer.error().message};
  }
  return std::move(answer).value();
}

void InferenceService::Http::configure(httplib::Server& server, InferenceService& self) {
  const ServiceOptions& config = self.options_;
  const int threads = config.http_threads;
  server.new_task_queue = [threads] { return new ConnectionPool(static_cast<std::size_t>(threads)); };
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second process of the same
  // user bind this port too and take a share of the apps' requests.
  server.set_socket_options([](int socket) {
    int yes = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(2);
  server.set_read_timeout(10);
  server.set_write_timeout(10);
  server.set_payload_max_length(config.max_body_bytes);
  // A client that waits for "100 Continue" is refused before it sends a body over the limit.
  server.set_expect_100_continue_handler([&config](const httplib::Request& request, httplib::Response& response) {
    if (request.get_header_value<std::uint64_t>("Content-Length") > config.max_body_bytes) {
      answer_error(response, 413, "the body is over the limit of " + std::to_string(config.max_body_bytes) + " bytes");
      return 413;
    }
    return 100;
  });
  server.set_error_handler([&config](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return;
    if (response.status == 413) {
      answer_error(response, 413, "the body is over the limit of " + std::to_string(config.max_body_bytes) + " bytes");
    } else if (response.status == 404) {
      answer_error(response, 404, "no endpoint " + request.method + " " + request.path.substr(0, 128));
    } else {
      answer_error(response, response.status, "the request could not be read");
    }
  });
  // Counted before the answer is written, so a client that has its answer sees it counted.
  server.set_post_routing_handler([&self](const httplib::Request& request, httplib::Response& response) {
    self.metrics_.count_request(endpoint_of(request.path), response.status);
  });
  if (!config.bearer_token.empty()) {
    server.set_pre_routing_handler([&config](const httplib::Request& request, httplib::Response& response) {
      if (request.path.rfind("/v2/health/", 0) == 0) return httplib::Server::HandlerResponse::Unhandled;
      const std::string given = request.get_header_value("Authorization");
      const std::string expected = "Bearer " + config.bearer_token;
      const bool same = given.size() == expected.size() &&
                        crypto::equal_in_constant_time(
                            std::span(reinterpret_cast<const std::uint8_t*>(given.data()), given.size()),
                            std::span(reinterpret_cast<const std::uint8_t*>(expected.data()), expected.size()));
      if (same) return httplib::Server::HandlerResponse::Unhandled;
      response.set_header("WWW-Authenticate", "Bearer");
      answer_error(response, 401, given.empty() ? "the Authorization header is missing; this service needs a bearer token"
                                                : "the bearer token is wrong");
      return httplib::Server::HandlerResponse::Handled;
    });
  }

  auto not_loaded = [&config](httplib::Response& response) {
    response.set_header("Retry-After", std::to_string(config.retry_after.count()));
    answer_error(response, 503, "no model is loaded yet");
  };
  // The model a path names, if it is the one served (and the version, if the path names one).
  auto named_model = [&self, not_loaded](const httplib::Request& request,
                                         httplib::Response& response) -> std::shared_ptr<ServedModel> {
    auto model = self.slot_.current();
    if (!model) {
      not_loaded(response);
      return nullptr;
    }
    const auto& info = model->info();
    const std::string name = request.matches[1];
    if (name != info.name) {
      answer_error(response, 404, "no model '" + name.substr(0, 128) + "'; this service serves '" + info.name + "'");
      return nullptr;
    }
    if (request.matches.size() > 2 && request.matches[2].matched &&
        request.matches[2].str() != std::to_string(info.version)) {
      answer_error(response, 404, "model '" + info.name + "' version " + request.matches[2].str().substr(0, 32) +
                                      " is not served; version " + std::to_string(info.version) + " is");
      return nullptr;
    }
    return model;
  };

  server.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"live":true})", kJsonAnswer);
  });
  server.Get("/v2/health/ready", [&self, &config](const httplib::Request&, httplib::Response& response) {
    if (self.slot_.current()) {
      response.set_content(R"({"ready":true})", kJsonAnswer);
    } else {
      response.status = 503;
      response.set_header("Retry-After", std::to_string(config.retry_after.count()));
      response.set_content(R"({"ready":false})", kJsonAnswer);
    }
  });
  server.Get("/v2", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(encode_server_metadata(), kJsonAnswer);
  });
  const std::string model_path = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  server.Get(model_path, [named_model](const httplib::Request& request, httplib::Response& response) {
    if (auto model = named_model(request, response)) response.set_content(encode_model_metadata(model->info()), kJsonAnswer);
  });
  server.Get(model_path + "/ready", [named_model](const httplib::Request& request, httplib::Response& response) {
    if (auto model = named_model(request, response)) {
      response.set_content(encode_model_ready(model->info()), kJsonAnswer);
    }
  });
  server.Post(model_path + "/infer", [&self, &config, named_model, not_loaded](const httplib::Request& request,
                                                                  httplib::Response& response) {
    const auto started = Clock::now();
    const std::string type = request.get_header_value("Content-Type");
    // The binary tensor extension's body is JSON, then raw bytes: JSON or octet-stream, with the JSON's length.
    std::optional<std::size_t> json_bytes;
    if (request.has_header(kJsonLengthHeader)) {
      const std::string length = request.get_header_value(kJsonLengthHeader);
      std::size_t value = 0;
      const auto [end, error] = std::from_chars(length.data(), length.data() + length.size(), value);
      if (error != std::errc() || end != length.data() + length.size()) {
        return answer_error(response, 400, std::string(kJsonLengthHeader) + " '" + length.substr(0, 32) +
                                               "' is not a byte count");
      }
      json_bytes = value;
    }
    if (type.rfind(kJson, 0) != 0 && !(json_bytes && type.rfind(kOctets, 0) == 0)) {
      answer_error(response, 415, "Content-Type is '" + type.substr(0, 64) +
                                      "'; infer takes application/json, or application/octet-stream with " +
                                      kJsonLengthHeader);
      return;
    }
    auto model = named_model(request, response);
    if (!model) return;
    auto decoded = [&] {
      self.decoding_.acquire();
      struct Permit {
        std::counting_semaphore<>& slots;
        ~Permit() { slots.release(); }
      } permit{self.decoding_};
      return decode_infer_request(request.body, model->info(), config.max_request_samples, json_bytes);
    }();
    if (!decoded) return answer_error(response, decoded.error().status, decoded.error().message);
    auto answer = self.predict(std::move(decoded->inputs), decoded->samples);
    if (!answer) {
      const auto& error = answer.error();
      if (error.failure == PredictFailure::not_loaded) return not_loaded(response);
      if (error.failure == PredictFailure::busy) {
        response.set_header("Retry-After", std::to_string(config.retry_after.count()));
        return answer_error(response, 503, error.message);
      }
      // The request matched the model when it was decoded; bad input here means a swap changed the shape since.
      return answer_error(response, 500, error.message);
    }
    auto encoded = encode_infer_response(*decoded, *answer->model, answer->logits);
    if (encoded.json_bytes) {
      response.set_header(kJsonLengthHeader, std::to_string(*encoded.json_bytes));
      response.set_content(std::move(encoded.body), kOctets);
    } else {
      response.set_content(std::move(encoded.body), kJsonAnswer);
    }
    self.metrics_.observe_infer_latency(Clock::now() - started);
  });
  server.Get("/metrics", [&self](const httplib::Request&, httplib::Response& response) {
    response.set_content(self.metrics_.prometheus_text(self.batcher_.queued_samples()),
                         "text/plain; version=0.0.4; charset=utf-8");
  });
}

Result<std::unique_ptr<InferenceService>> InferenceService::start(ServiceOptions options) {
  if (auto status = validate(options); !status) return status.error();
  std::unique_ptr<InferenceService> service(new InferenceService(std::move(options)));
  if (!service->options_.listen) return service;
  InferenceService& self = *service;
  const ServiceOptions& config = self.options_;
  auto& listeners = self.http_->listeners;

  auto add = [&](std::unique_ptr<HttpListener> server) {
    listeners.push_back(std::make_unique<Http::Listener>());
    listeners.back()->server = std::move(server);
  };
  // A listener bound but never served closes its socket (and removes a Unix socket's file) as it goes, so a
  // failure here leaves nothing bound.
  if (!config.unix_socket.empty()) {
    auto server = std::make_unique<HttpListener>();
    Http::configure(*server, self);
    if (auto status = server->bind_unix(config.unix_socket); !status) return status.error();
    add(std::move(server));
  }
  if (config.tcp) {
    auto server = std::make_unique<HttpListener>();
    Http::configure(*server, self);
    self.port_ = server->bind_tcp(config.host, config.port);
    if (self.port_ == 0) {
      return make_error(ErrorCode::io, "cannot listen on " + config.host + ":" + std::to_string(config.port) +
                                           " (in use, or not an address of this device)");
    }
    add(std::move(server));
  }
  for (auto& listener : listeners) {
    listener->thread = std::thread([&server = *listener->server, &returned = listener->returned] {
      server.serve();
      returned = true;
    });
  }
  return service;
}

}  // namespace shoal::serving
