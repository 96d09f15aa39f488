#!/usr/bin/env bash
# End-to-end check of shoal-agent init-model, train and predict as a device
# operator runs them, on small synthetic data, plus its refusals of bad input.
# Usage: shoal_agent_cli_test.sh PATH_TO_SHOAL_AGENT BATCHNORM_MODEL.pt
set -euo pipefail
agent="$1"
batchnorm_model="$2"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$dir"

"$agent" init-model --model mlp --seed 3 --out v0.weights >out
grep -q "mlp version 0, 199210 parameter values, layout" out || fail "init-model: $(cat out)"

"$agent" train --model mlp --weights v0.weights --synthetic 300 --epochs 3 --learning-rate 0.05 \
  --device cpu --out v1.weights >out
grep -q "wrote v1.weights (version 1)" out || fail "train: $(cat out)"
before=$(awk '/before:/ {print $3}' out)
after=$(awk '/after:/ {print $3}' out)
awk -v b="$before" -v a="$after" 'BEGIN { exit !(a < b) }' || fail "loss did not fall: $before -> $after"

"$agent" predict --model mlp --weights v1.weights --synthetic 300 --device cpu --show 2 >out
grep -q "^sample 1: predicted" out || fail "predict --show: $(cat out)"
grep -q "predicted 300 samples" out || fail "predict: $(cat out)"

# A TorchScript model with BatchNorm: its running statistics travel in the
# weights file, so predict reaches the accuracy training ended with.
"$agent" init-model --model "$batchnorm_model" --out bn0.weights >out
grep -q "bn_cnn.pt version 0, 20586 parameter values and 98 buffer values" out || fail "init-model TorchScript: $(cat out)"
"$agent" train --model "$batchnorm_model" --weights bn0.weights --synthetic 300 --epochs 2 --learning-rate 0.05 \
  --device cpu --out bn1.weights >out
trained=$(awk '/after:/ {print $5}' out)
"$agent" predict --model "$batchnorm_model" --weights bn1.weights --synthetic 300 --device cpu >out
predicted=$(sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' out)
[ -n "$trained" ] && [ "$trained" = "$predicted" ] || fail "BatchNorm model: trained to $trained, predicts $predicted"

# Refusals: each exits non-zero with a message naming what was wrong.
expect_error() {  # expect_error PATTERN COMMAND...
  local pattern="$1"; shift
  if "$@" >out 2>err; then fail "accepted: $*"; fi
  grep -q -- "$pattern" err || fail "'$*' said: $(cat err), expected: $pattern"
}
"$agent" init-model --model cnn --out cnn.weights >/dev/null
expect_error "does not match the expected layout" "$agent" predict --model mlp --weights cnn.weights --synthetic 4
expect_error "available: cpu" "$agent" predict --model mlp --synthetic 4 --device cuda:7
expect_error "no data" "$agent" predict --model mlp
expect_error "threads" "$agent" predict --model mlp --synthetic 4 --threads -1
head -c 100 v1.weights >cut.weights
expect_error "cut.weights" "$agent" predict --model mlp --weights cut.weights --synthetic 4
expect_error "learning_rate" "$agent" train --model mlp --synthetic 4 --learning-rate 0 --out x.weights
[ ! -e x.weights ] || fail "a refused training run wrote its output"
echo "shoal-agent end-to-end: ok"
