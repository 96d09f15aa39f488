// The C API (shoal/shoal.h) over the configured device (configured_device.h).
// Every entry point catches whatever C++ throws and turns it into a status
// and a last error, so no exception crosses into C, Swift or JNI frames.
#include "shoal/shoal.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "shoal/client/configured_device.h"

#ifndef SHOAL_VERSION
#error "SHOAL_VERSION is defined by client/CMakeLists.txt"
#endif

struct shoal_agent {
  shoal::client::ConfiguredDevice device;
  std::string url;
  std::mutex run_mutex;  // start and stop
  std::atomic<bool> stop{false};
  std::thread worker;
};

namespace {

using shoal::ErrorCode;

thread_local std::string last_error;

shoal_status fail(shoal_status status, std::string message) {
  last_error = std::move(message);
  return status;
}

shoal_status fail(const shoal::Error& error) {
  switch (error.code) {
    case ErrorCode::invalid_argument: return fail(SHOAL_INVALID_ARGUMENT, error.describe());
    case ErrorCode::not_found: return fail(SHOAL_NOT_FOUND, error.describe());
    case ErrorCode::io: return fail(SHOAL_IO, error.describe());
    case ErrorCode::corrupt: return fail(SHOAL_CORRUPT, error.describe());
    case ErrorCode::permission: return fail(SHOAL_PERMISSION, error.describe());
    case ErrorCode::verification:
    case ErrorCode::unsupported: return fail(SHOAL_FAILED, error.describe());
  }
  return fail(SHOAL_FAILED, error.describe());
}

shoal_status fail(const shoal::serving::PredictError& error) {
  using shoal::serving::PredictFailure;
  switch (error.failure) {
    case PredictFailure::bad_input: return fail(SHOAL_INVALID_ARGUMENT, error.message);
    case PredictFailure::not_loaded: return fail(SHOAL_NOT_READY, error.message);
    case PredictFailure::busy: return fail(SHOAL_BUSY, error.message);
    case PredictFailure::failed: return fail(SHOAL_FAILED, error.message);
  }
  return fail(SHOAL_FAILED, error.message);
}

// Runs `body`, turning any exception into SHOAL_FAILED with its message.
template <typename Body>
shoal_status guarded(const char* function, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& error) {
    return fail(SHOAL_FAILED, std::string(function) + ": " + error.what());
  } catch (...) {
    return fail(SHOAL_FAILED, std::string(function) + ": an unknown error");
  }
}

void copy_text(char* out, std::size_t room, const std::string& text) {
  const std::size_t length = std::min(text.size(), room - 1);
  std::memcpy(out, text.data(), length);
  out[length] = '\0';
}

}  // namespace

extern "C" {

const char* shoal_last_error(void) { return last_error.c_str(); }

const char* shoal_version(void) { return SHOAL_VERSION; }

shoal_status shoal_agent_create(const char* config_file, shoal_mode mode, shoal_log_fn log, void* log_context,
                                shoal_agent** agent) {
  return guarded("shoal_agent_create", [&] {
    if (agent == nullptr) return fail(SHOAL_INVALID_ARGUMENT, "shoal_agent_create: agent is NULL");
    *agent = nullptr;
    if (config_file == nullptr) return fail(SHOAL_INVALID_ARGUMENT, "shoal_agent_create: config_file is NULL");
    if (mode != SHOAL_MODE_SERVE && mode != SHOAL_MODE_ROUNDS) {
      return fail(SHOAL_INVALID_ARGUMENT, "shoal_agent_create: mode " + std::to_string(int(mode)) + " is not a shoal_mode");
    }
    const auto use = mode == SHOAL_MODE_ROUNDS ? shoal::client::AgentUse::run : shoal::client::AgentUse::models;
    auto config = shoal::client::load_agent_config(config_file, use);
    if (!config) return fail(config.error());
    shoal::client::DeviceStartOptions options;
    options.use = use;
    options.in_process = true;
    if (log != nullptr) {
      // The agent logs from several threads; the app's callback gets one line at a time.
      auto serial = std::make_shared<std::mutex>();
      options.log = [log, log_context, serial](const std::string& line) {
        std::lock_guard lock(*serial);
        log(log_context, line.c_str());
      };
    }
    auto device = shoal::client::start_configured_device(*config, std::move(options));
    if (!device) return fail(device.error());
    auto made = std::make_unique<shoal_agent>();
    made->device = std::move(device).value();
    if (auto* service = made->device.runtime->service(); service != nullptr && service->port() > 0) {
      made->url = service->url();
    }
    *agent = made.release();
    return SHOAL_OK;
  });
}

shoal_status shoal_agent_start(shoal_agent* agent) {
  return guarded("shoal_agent_start", [&] {
    if (agent == nullptr) return fail(SHOAL_INVALID_ARGUMENT, "shoal_agent_start: agent is NULL");
    std::lock_guard lock(agent->run_mutex);
    if (agent->worker.joinable()) return fail(SHOAL_INVALID_ARGUMENT, "shoal_agent_start: the agent is running already");
    agent->stop = false;
    agent->worker = std::thread([agent] {
      try {
        agent->device.runtime->run(agent->stop, agent->device.agent.get());
      } catch (...) {
        // run() reports its failures to the log; nothing may escape a thread.
      }
    });
    return SHOAL_OK;
  });
}

shoal_status shoal_agent_stop(shoal_agent* agent) {
  return guarded("shoal_agent_stop", [&] {
    if (agent == nullptr) return fail(SHOAL_INVALID_ARGUMENT, "shoal_agent_stop: agent is NULL");
    std::lock_guard lock(agent->run_mutex);
    if (!agent->worker.joinable()) return SHOAL_OK;
    agent->stop = true;
    agent->worker.join();
    return SHOAL_OK;
  });
}

void shoal_agent_destroy(shoal_agent* agent) {
  if (agent == nullptr) return;
  (void)shoal_agent_stop(agent);
  try {
    delete agent;
  } catch (...) {
  }
}

shoal_status shoal_predict(shoal_agent* agent, const float* inputs, size_t samples, shoal_output kind, float* outputs,
                           size_t output_capacity, uint64_t* model_version) {
  return guarded("shoal_predict", [&] {
    if (agent == nullptr || inputs == nullptr || outputs == nullptr) {
      return fail(SHOAL_INVALID_ARGUMENT, "shoal_predict: agent, inputs and outputs may not be NULL");
    }
    if (kind != SHOAL_OUTPUT_LOGITS && kind != SHOAL_OUTPUT_PROBABILITIES) {
      return fail(SHOAL_INVALID_ARGUMENT, "shoal_predict: kind " + std::to_string(int(kind)) + " is not a shoal_output");
    }
    auto* service = agent->device.runtime->service();
    auto model = service ? service->serving() : nullptr;
    if (!model) return fail(SHOAL_NOT_READY, "shoal_predict: no model is served yet");
    // The sizes are checked against the model served now; the batch checks them again against the one it runs.
    const auto& info = model->info();
    if (samples == 0 || samples > SIZE_MAX / std::max<std::size_t>(info.sample_values, info.outputs)) {
      return fail(SHOAL_INVALID_ARGUMENT, "shoal_predict: samples is " + std::to_string(samples));
    }
    if (output_capacity < samples * info.outputs) {
      return fail(SHOAL_INVALID_ARGUMENT, "shoal_predict: outputs has room for " + std::to_string(output_capacity) +
                                              " floats; " + std::to_string(samples) + " samples of " + info.name +
                                              " need " + std::to_string(samples * info.outputs));
    }
    auto answer = agent->device.runtime->predict(std::span(inputs, samples * info.sample_values), samples);
    if (!answer) return fail(answer.error());
    const auto& answered = *answer->model;
    if (answer->logits.size() > output_capacity) {
      return fail(SHOAL_INVALID_ARGUMENT, "shoal_predict: the model changed to one with " +
                                              std::to_string(answered.outputs) + " outputs a sample; outputs is too small");
    }
    const auto values = kind == SHOAL_OUTPUT_LOGITS ? answer->logits
                                                    : shoal::serving::softmax_rows(answer->logits, answered.outputs);
    std::copy(values.begin(), values.end(), outputs);
    if (model_version != nullptr) *model_version = answered.version;
    return SHOAL_OK;
  });
}

shoal_status shoal_model_info_get(shoal_agent* agent, shoal_model_info* info) {
  return guarded("shoal_model_info_get", [&] {
    if (agent == nullptr || info == nullptr) {
      return fail(SHOAL_INVALID_ARGUMENT, "shoal_model_info_get: agent and info may not be NULL");
    }
    auto* service = agent->device.runtime->service();
    auto model = service ? service->serving() : nullptr;
    if (!model) return fail(SHOAL_NOT_READY, "shoal_model_info_get: no model is served yet");
    const auto& served = model->info();
    *info = shoal_model_info{};
    copy_text(info->name, sizeof info->name, served.name);
    copy_text(info->source, sizeof info->source, served.source);
    info->version = served.version;
    info->sample_rank = std::min<std::size_t>(served.sample_shape.size(), SHOAL_MAX_RANK);
    std::copy_n(served.sample_shape.begin(), info->sample_rank, info->sample_shape);
    info->sample_values = served.sample_values;
    info->outputs = served.outputs;
    return SHOAL_OK;
  });
}

const char* shoal_agent_url(shoal_agent* agent) { return agent == nullptr ? "" : agent->url.c_str(); }

}  // extern "C"
