#!/usr/bin/env bash
# The agent as a library, as an app's developer uses it: `cmake --install`
# into a fresh prefix, then examples/ configured and built outside the
# source tree with find_package(shoal CONFIG), and its C program run
# against a device's state directory.
# Usage: installed_example_test.sh BUILD_DIR SOURCE_DIR PATH_TO_SHOAL_AGENT
set -euo pipefail
build="$1"
source="$2"
agent="$3"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$dir/prefix" >"$dir/install.log" || fail "install: $(tail -5 "$dir/install.log")"
test -f "$dir/prefix/include/shoal/shoal.h" || fail "shoal/shoal.h is not installed"
test -f "$dir/prefix/lib/cmake/shoal/shoalConfig.cmake" || fail "the CMake package is not installed"
cp -r "$source/examples" "$dir/examples"  # outside the source tree
cmake -S "$dir/examples" -B "$dir/example-build" -G Ninja -DCMAKE_PREFIX_PATH="$dir/prefix" \
  >"$dir/configure.log" 2>&1 || fail "configure: $(tail -20 "$dir/configure.log")"
cmake --build "$dir/example-build" >"$dir/build.log" 2>&1 || fail "build: $(tail -20 "$dir/build.log")"
predict="$dir/example-build/predict"

# A device whose latest global model is v0 of logreg, served in the app's process.
mkdir -p "$dir/device"
"$agent" init-model --model logreg --seed 5 --out "$dir/device/model.weights" >/dev/null
cat >"$dir/app.toml" <<TOML
[agent]
state_dir = "device"
[model]
name = "logreg"
[serve]
model = "latest-global"
TOML
"$predict" "$dir/app.toml" >"$dir/out" 2>"$dir/err" || fail "predict: $(cat "$dir/out" "$dir/err")"
grep -q "^shoal 0.1.0 serves logreg version 0 (latest-global): 784 values in, 10 classes out$" "$dir/out" ||
  fail "model info: $(cat "$dir/out")"
grep -Eq "^class [0-9], probability 0\.[0-9]{4} \(version 0\)$" "$dir/out" || fail "prediction: $(cat "$dir/out")"
grep -q "serving logreg version 0 (loaded)" "$dir/err" ||
  fail "the agent's log: $(cat "$dir/err")"

# An image of the model's size, and refusals that name what was wrong.
{ printf 'P5\n28 28\n255\n'; head -c 784 /dev/zero | tr '\0' '\200'; } >"$dir/grey.pgm"
"$predict" "$dir/app.toml" "$dir/grey.pgm" >"$dir/out" 2>&1 || fail "predict an image: $(cat "$dir/out")"
grep -q "^class [0-9], probability" "$dir/out" || fail "predict an image: $(cat "$dir/out")"
{ printf 'P5\n28 28\n255\n'; head -c 100 /dev/zero; } >"$dir/short.pgm"
if "$predict" "$dir/app.toml" "$dir/short.pgm" >"$dir/out" 2>&1; then fail "a truncated image was predicted"; fi
grep -q "short.pgm ends after 100 of 784 pixels" "$dir/out" || fail "truncated image: $(cat "$dir/out")"
if "$predict" "$dir/missing.toml" >"$dir/out" 2>&1; then fail "a missing config was accepted"; fi
grep -q "missing.toml" "$dir/out" || fail "missing config: $(cat "$dir/out")"
rm "$dir/device/model.weights"
if "$predict" "$dir/app.toml" >"$dir/out" 2>&1; then fail "predicted with no model"; fi
grep -q "no model is served yet" "$dir/out" || fail "no model: $(cat "$dir/out")"
echo "ok: installed, built examples/ outside the tree, predicted"
