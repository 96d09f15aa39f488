/* shoal.h: the device agent as a library, for apps in C, Swift (through a
 * module map) or Kotlin and Java (through JNI).
 *
 * An app creates an agent from the same TOML file `shoal-agent run` reads,
 * starts it, and asks it for predictions in its own process. The agent
 * serves the model its config names in [serve] (`model = "release"`, the
 * default: only signed, verified releases; or "latest-global"), swaps to
 * each new release or global model between batches, and, in
 * SHOAL_MODE_ROUNDS, trains in federated rounds while it serves. With a
 * [serve] port it also answers other apps over HTTP.
 *
 *   shoal_agent* agent = NULL;
 *   if (shoal_agent_create("agent.toml", SHOAL_MODE_SERVE, NULL, NULL, &agent) != SHOAL_OK) {
 *     fprintf(stderr, "%s\n", shoal_last_error());
 *   }
 *   shoal_agent_start(agent);
 *   float probabilities[10];
 *   shoal_predict(agent, pixels, 1, SHOAL_OUTPUT_PROBABILITIES, probabilities, 10, NULL);
 *   shoal_agent_destroy(agent);
 *
 * Errors: every function that can fail returns a shoal_status; on a
 * failure, shoal_last_error() tells what was wrong. No C++ exception
 * crosses this interface. Strings are UTF-8 and NUL-terminated.
 */
#ifndef SHOAL_SHOAL_H
#define SHOAL_SHOAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shoal_status {
  SHOAL_OK = 0,
  SHOAL_INVALID_ARGUMENT = 1, /* a null pointer, a bad value, a buffer too small, a bad config */
  SHOAL_NOT_FOUND = 2,        /* a file the config names does not exist */
  SHOAL_IO = 3,               /* the system refused a read, a write or a port */
  SHOAL_CORRUPT = 4,          /* a stored file does not parse */
  SHOAL_PERMISSION = 5,       /* a key or token file is readable by others, or access is denied */
  SHOAL_NOT_READY = 6,        /* no model is served yet: no release installed, no global model yet */
  SHOAL_BUSY = 7,             /* the inference queue is full; retry later */
  SHOAL_FAILED = 8,           /* anything else: the model failed, a signature did not verify, ... */
  SHOAL_STATUS_MAX_ENUM = 0x7fffffff  /* not a status: makes the type hold any int, so a bad value is an error */
} shoal_status;

typedef enum shoal_mode {
  SHOAL_MODE_SERVE = 0,  /* serve the device's models and install releases ([serve], [release]) */
  SHOAL_MODE_ROUNDS = 1, /* also take part in federated rounds ([aggregator], [data]) */
  SHOAL_MODE_MAX_ENUM = 0x7fffffff
} shoal_mode;

typedef enum shoal_output {
  SHOAL_OUTPUT_LOGITS = 0,        /* the model's raw outputs */
  SHOAL_OUTPUT_PROBABILITIES = 1, /* their softmax */
  SHOAL_OUTPUT_MAX_ENUM = 0x7fffffff
} shoal_output;

/* An agent. Opaque: made by shoal_agent_create, freed by shoal_agent_destroy. */
typedef struct shoal_agent shoal_agent;

/* Called with each line the agent logs, on the agent's own threads (any
 * of them, one line at a time). `context` is what shoal_agent_create was given. */
typedef void (*shoal_log_fn)(void* context, const char* line);

#define SHOAL_MAX_NAME 128
#define SHOAL_MAX_RANK 8

typedef struct shoal_model_info {
  char name[SHOAL_MAX_NAME];        /* what requests name: a zoo name or a TorchScript file's stem */
  char source[16];                  /* "release" or "latest-global" */
  uint64_t version;                 /* the release's (or the round's) version */
  size_t sample_rank;               /* dimensions of one sample ... */
  int64_t sample_shape[SHOAL_MAX_RANK]; /* ... e.g. 1, 28, 28 */
  size_t sample_values;             /* floats per sample: the shape's product */
  size_t outputs;                   /* floats out per sample: one per class */
} shoal_model_info;

/* What went wrong in the last call that failed on this thread, in words
 * naming the file, key or argument. Never NULL ("" before any failure).
 * The string belongs to the library and stays valid until the next shoal_
 * call on the same thread. Thread-safe: each thread has its own. */
const char* shoal_last_error(void);

/* The library's version, e.g. "0.1.0". Static storage; thread-safe. */
const char* shoal_version(void);

/* Reads the agent config at `config_file` (the TOML of `shoal-agent run`),
 * the keys and data it names, and starts serving what its state directory
 * holds now, if anything. Nothing runs in the background until
 * shoal_agent_start. `log` may be NULL (the agent is then quiet).
 * On success *agent is a new agent that the caller owns; on a failure it
 * is set to NULL. Thread-safe. */
shoal_status shoal_agent_create(const char* config_file, shoal_mode mode, shoal_log_fn log, void* log_context,
                                shoal_agent** agent);

/* Starts the agent's work on threads of its own: release checks, noticing
 * installs by other processes (`shoal-agent update`), and rounds in
 * SHOAL_MODE_ROUNDS. Returns at once. SHOAL_INVALID_ARGUMENT if it is
 * running already. Call it from one thread at a time, as shoal_agent_stop. */
shoal_status shoal_agent_start(shoal_agent* agent);

/* Stops the background work and waits for it to end (at most a round's
 * message timeout). Predictions keep working. SHOAL_OK if it was not
 * running. Not to be called from the log callback. */
shoal_status shoal_agent_stop(shoal_agent* agent);

/* Stops the agent if it runs and frees it. `agent` may be NULL. No other
 * call may be using the agent, and it may not be used after. */
void shoal_agent_destroy(shoal_agent* agent);

/* Predicts `samples` samples: `inputs` holds samples x sample_values
 * floats (shoal_model_info), row-major, scaled as the training data is
 * (pixels 0..1). Writes samples x outputs floats of `kind` to `outputs`,
 * whose room is `output_capacity` floats. `model_version`, if not NULL,
 * gets the version that answered. Thread-safe: calls from many threads
 * are batched together. Blocks until its batch has run. The buffers
 * stay the caller's. */
shoal_status shoal_predict(shoal_agent* agent, const float* inputs, size_t samples, shoal_output kind,
                           float* outputs, size_t output_capacity, uint64_t* model_version);

/* The model served now. SHOAL_NOT_READY while none is. Thread-safe. */
shoal_status shoal_model_info_get(shoal_agent* agent, shoal_model_info* info);

/* The address of the agent's HTTP service ("http://127.0.0.1:8501"), or
 * "" when its config has no [serve] port. Owned by the agent, valid until
 * shoal_agent_destroy. Thread-safe. */
const char* shoal_agent_url(shoal_agent* agent);

#ifdef __cplusplus
}
#endif

#endif /* SHOAL_SHOAL_H */
