/* predict: an app in C that links the shoal agent, asks it which model it
 * serves, and predicts one image.
 *
 *   predict CONFIG [IMAGE]
 *
 * CONFIG is an agent config (the TOML of `shoal-agent run`): its state
 * directory holds the device's models, and [serve] picks which one
 * answers. IMAGE is a binary PGM (P5) of the model's sample size, e.g.
 * 28x28 for Fashion-MNIST; without it the app predicts a test pattern. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shoal/shoal.h>

static void print_log(void* context, const char* line) {
  (void)context;
  fprintf(stderr, "[shoal] %s\n", line);
}

/* Reads a P5 PGM of `values` pixels into 0..1 floats; 0 on success. */
static int read_pgm(const char* path, float* pixels, size_t values) {
  FILE* file = fopen(path, "rb");
  if (file == NULL) {
    fprintf(stderr, "predict: cannot open %s\n", path);
    return 1;
  }
  unsigned width = 0, height = 0, max = 0;
  int status = 1;
  if (fscanf(file, "P5 %u %u %u", &width, &height, &max) != 3 || max == 0 || max > 255 || fgetc(file) == EOF) {
    fprintf(stderr, "predict: %s is not a binary PGM (P5) with 8-bit pixels\n", path);
  } else if ((size_t)width * height != values) {
    fprintf(stderr, "predict: %s is %ux%u; the model takes %zu pixels\n", path, width, height, values);
  } else {
    status = 0;
    for (size_t i = 0; i < values && status == 0; ++i) {
      const int pixel = fgetc(file);
      if (pixel == EOF) {
        fprintf(stderr, "predict: %s ends after %zu of %zu pixels\n", path, i, values);
        status = 1;
      }
      pixels[i] = (float)pixel / (float)max;
    }
  }
  fclose(file);
  return status;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s CONFIG [IMAGE.pgm]\n", argv[0]);
    return 2;
  }
  shoal_agent* agent = NULL;
  if (shoal_agent_create(argv[1], SHOAL_MODE_SERVE, print_log, NULL, &agent) != SHOAL_OK) {
    fprintf(stderr, "predict: %s\n", shoal_last_error());
    return 1;
  }
  int exit_code = 1;
  float* pixels = NULL;
  float* probabilities = NULL;
  shoal_model_info info;
  if (shoal_model_info_get(agent, &info) != SHOAL_OK) {
    fprintf(stderr, "predict: %s\n", shoal_last_error());
    goto done;
  }
  printf("shoal %s serves %s version %llu (%s): %zu values in, %zu classes out\n", shoal_version(), info.name,
         (unsigned long long)info.version, info.source, info.sample_values, info.outputs);

  pixels = malloc(info.sample_values * sizeof *pixels);
  probabilities = malloc(info.outputs * sizeof *probabilities);
  if (pixels == NULL || probabilities == NULL) goto done;
  if (argc == 3) {
    if (read_pgm(argv[2], pixels, info.sample_values) != 0) goto done;
  } else {
    for (size_t i = 0; i < info.sample_values; ++i) pixels[i] = (float)(i % 28) / 27.0f;  /* a test pattern */
  }
  uint64_t version = 0;
  if (shoal_predict(agent, pixels, 1, SHOAL_OUTPUT_PROBABILITIES, probabilities, info.outputs, &version) != SHOAL_OK) {
    fprintf(stderr, "predict: %s\n", shoal_last_error());
    goto done;
  }
  size_t top = 0;
  for (size_t k = 1; k < info.outputs; ++k) {
    if (probabilities[k] > probabilities[top]) top = k;
  }
  printf("class %zu, probability %.4f (version %llu)\n", top, probabilities[top], (unsigned long long)version);
  exit_code = 0;

done:
  free(pixels);
  free(probabilities);
  shoal_agent_destroy(agent);
  return exit_code;
}
