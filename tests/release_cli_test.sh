#!/usr/bin/env bash
# End-to-end check of signed model releases as an operator and a device run
# them: shoal-keys makes release keys, shoal-release init / sign / add /
# publish / verify / inspect / rotate builds the repository, and
# shoal-agent update / rollback / predict installs from it. Also: a tampered
# target and an install killed after each step leave the device's model
# intact and loadable; securesystemslib (python-tuf's library) verifies the
# repository the commands built. A delegated role signs a plain file, which
# shoal-tuf downloads from the repository.
# Usage: release_cli_test.sh SHOAL_KEYS SHOAL_RELEASE SHOAL_AGENT SHOAL_TUF
set -euo pipefail
keys="$1" release="$2" agent="$3" tuf="$4"
interop="$(cd "$(dirname "$0")" && pwd)/tuf_interop_check.py"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$dir"
expect() {  # expect PATTERN COMMAND...: succeeds and prints PATTERN
  local pattern="$1"; shift
  "$@" >out 2>err || fail "'$*' failed: $(cat err)"
  grep -q -- "$pattern" out || fail "'$*' said: $(cat out), expected: $pattern"
}
expect_error() {  # expect_error PATTERN COMMAND...: fails and says PATTERN on stderr
  local pattern="$1"; shift
  if "$@" >out 2>err; then fail "accepted: $*"; fi
  grep -q -- "$pattern" err || fail "'$*' said: $(cat err), expected: $pattern"
}

mkdir keys
for name in root targets online root2; do "$keys" generate --role release --out "keys/$name.key" >/dev/null; done
repo=(--repo releases)
publish=(--snapshot-key keys/online.key --timestamp-key keys/online.key)
device=(--model mlp --device cpu --state-dir device --repository releases)

# The operator: a repository, root signed, version 0 added, signed and published.
expect "root version 1 staged" "$release" init "${repo[@]}" --root-key keys/root.pub --targets-key keys/targets.pub \
  --snapshot-key keys/online.pub --timestamp-key keys/online.pub
expect "1 of 1 signature(s)" "$release" sign "${repo[@]}" --role root --key keys/root.key
"$agent" init-model --model mlp --seed 1 --out v0.weights >/dev/null
expect "staged mlp version 0 (full file" "$release" add "${repo[@]}" --model mlp --weights v0.weights
expect_error "staged targets: 0 valid signature(s)" "$release" publish "${repo[@]}" "${publish[@]}"
expect_error "is not a targets key" "$release" sign "${repo[@]}" --role targets --key keys/online.key
expect "1 of 1 signature(s)" "$release" sign "${repo[@]}" --role targets --key keys/targets.key
expect "published root version 1 and targets version 1" "$release" publish "${repo[@]}" "${publish[@]}"
expect "0 problem(s)" "$release" verify "${repo[@]}"

# The device: trusts root version 1, installs version 0 whole.
expect_error "trusts no release root" "$agent" update "${device[@]}"
expect "installed mlp version 0 (full file" "$agent" update "${device[@]}" --trusted-root releases/metadata/1.root.json
expect "up to date: version 0 is active" "$agent" update "${device[@]}"

# Version 1 arrives as a delta from version 0.
"$agent" train --model mlp --weights v0.weights --synthetic 200 --epochs 1 --device cpu --out v1.weights >/dev/null
expect "delta mlp/v1.from-v0.delta" "$release" add "${repo[@]}" --model mlp --weights v1.weights
"$release" sign "${repo[@]}" --role targets --key keys/targets.key >/dev/null
"$release" publish "${repo[@]}" "${publish[@]}" >/dev/null
expect "mlp/v1.from-v0.delta" "$release" inspect "${repo[@]}"
expect "installed mlp version 1 (delta from 0" "$agent" update "${device[@]}"
expect "predicted 20 samples" "$agent" predict --model mlp --device cpu --state-dir device --synthetic 20

# Rollback returns to version 0, and updates leave it there until a newer release.
expect "version 0 is active" "$agent" rollback --state-dir device
expect "rolled back from: version 1" "$agent" release-status --state-dir device
expect "rolled back from" "$agent" update "${device[@]}"
expect_error "does not match the expected layout" "$agent" predict --model cnn --device cpu --state-dir device --synthetic 2

# A lossy version 2; a tampered target is refused at download and the active model stays.
"$agent" train --model mlp --weights v1.weights --synthetic 200 --epochs 1 --seed 2 --device cpu --out v2.weights >/dev/null
expect "lossy: each weight within 0.0001" "$release" add "${repo[@]}" --model mlp --weights v2.weights \
  --lossy-bound 0.0001
"$release" sign "${repo[@]}" --role targets --key keys/targets.key >/dev/null
"$release" publish "${repo[@]}" "${publish[@]}" >/dev/null
cp releases/targets/mlp/v2.from-v0.delta saved.delta
printf 'x' | dd of=releases/targets/mlp/v2.from-v0.delta bs=1 seek=100 conv=notrunc status=none
expect_error "install step 'download'" "$agent" update "${device[@]}"
expect_error "1 problem(s)" "$release" verify "${repo[@]}"
expect "active: version 0" "$agent" release-status --state-dir device
cp saved.delta releases/targets/mlp/v2.from-v0.delta

# An install killed after each step leaves a model that loads; the next update finishes.
for step in "refresh metadata" "choose file" "download" "rebuild weights" "smoke test" "stage" "switch active model"; do
  rm -rf crash && cp -r device crash
  status=0
  SHOAL_CRASH_AFTER_STEP="$step" "$agent" update --model mlp --device cpu --state-dir crash --repository releases \
    >out 2>err || status=$?
  [ "$status" = 86 ] || fail "update with a crash after '$step' exited $status: $(cat err)"
  expect "predicted 2 samples" "$agent" predict --model mlp --device cpu --state-dir crash --synthetic 2
  expect "version 2 is active\|up to date: version 2" "$agent" update --model mlp --device cpu --state-dir crash \
    --repository releases
done

# Root rotation: root version 2 needs the old and the new root key; the device follows it.
expect "staged root version 2" "$release" rotate "${repo[@]}" --root-key keys/root2.pub
"$release" sign "${repo[@]}" --role root --key keys/root2.key >/dev/null
expect_error "previous root's keys" "$release" publish "${repo[@]}" "${publish[@]}"
"$release" sign "${repo[@]}" --role root --key keys/root.key >/dev/null
expect "published root version 2" "$release" publish "${repo[@]}" "${publish[@]}"
expect "installed mlp version 2 (lossy, within 0.0001)" "$agent" update "${device[@]}"
grep -q '"version": 2' device/release/trust/root.json || fail "the device did not take root version 2"

# A delegation: role docs may sign docs/* and nothing else; publish needs its signature.
"$keys" generate --role release --out keys/docs.key >/dev/null
expect "staged delegation of paths to role 'docs'" "$release" delegate "${repo[@]}" --role docs --key keys/docs.pub \
  --paths 'docs/*'
echo "release notes" >notes.txt
expect_error "is not delegated path 'other/notes.txt'" "$release" add-target "${repo[@]}" --role docs \
  --path other/notes.txt --file notes.txt
expect "staged target docs/notes.txt" "$release" add-target "${repo[@]}" --role docs --path docs/notes.txt \
  --file notes.txt
"$release" sign "${repo[@]}" --role targets --key keys/targets.key >/dev/null
expect_error "staged docs: 0 valid signature(s)" "$release" publish "${repo[@]}" "${publish[@]}"
expect_error "is not one of the keys targets delegates role 'docs' to" "$release" sign "${repo[@]}" --role docs \
  --key keys/targets.key
expect "signed staged role 'docs'" "$release" sign "${repo[@]}" --role docs --key keys/docs.key
expect "role 'docs'.*1 of 1 required signature(s), delegated by targets paths docs/\*" "$release" inspect "${repo[@]}"
expect "published" "$release" publish "${repo[@]}" "${publish[@]}"
expect "0 problem(s)" "$release" verify "${repo[@]}"
expect "up to date: version 2" "$agent" update "${device[@]}"

# shoal-tuf, a generic TUF client, follows the repository (root rotation,
# consistent snapshots) and downloads the delegated file.
expect "trusting" "$tuf" --metadata-dir tuf init releases/metadata/1.root.json
expect "docs/notes.txt: downloaded" "$tuf" --metadata-dir tuf --metadata-url releases/metadata \
  --target-name docs/notes.txt --target-dir got --target-base-url releases/targets download
cmp got/docs%2Fnotes.txt notes.txt || fail "shoal-tuf downloaded something else"
grep -q '"version": 2' tuf/root.json || fail "shoal-tuf did not follow the root rotation"

# A staged rollout through the online rollout role: the canary group first,
# then the rest; devices outside the stage stay; a halt rolls the canary back.
"$keys" generate --role release --out keys/rollout.key >/dev/null
"$keys" generate --role device --out keys/canary.key >/dev/null
expect "staged delegation" "$release" delegate "${repo[@]}" --role rollout --key keys/rollout.pub \
  --paths 'rollout/*' --terminating
"$release" sign "${repo[@]}" --role rollout --key keys/rollout.key >/dev/null
"$agent" train --model mlp --weights v2.weights --synthetic 200 --epochs 1 --seed 3 --device cpu --out v3.weights >/dev/null
"$release" add "${repo[@]}" --model mlp --weights v3.weights >/dev/null
"$release" sign "${repo[@]}" --role targets --key keys/targets.key >/dev/null
"$release" publish "${repo[@]}" "${publish[@]}" >/dev/null
echo "$(sed -n 's/^public //p' keys/canary.pub) lab-phone group=canary" >enrolled.txt
grep -q "^ed25519:" enrolled.txt || fail "no device key in keys/canary.pub: $(cat keys/canary.pub)"
online=(--rollout-key keys/rollout.key "${publish[@]}")
expect_error "not one of the keys targets delegates role 'rollout' to" "$release" rollout start mlp 3 "${repo[@]}" \
  --stages canary,100 --enrolment enrolled.txt --rollout-key keys/online.key "${publish[@]}"
expect_error "give the enrolment list" "$release" rollout start mlp 3 "${repo[@]}" --stages canary,100 "${online[@]}"
expect "> stage 1: group canary (1 devices)" "$release" rollout start mlp 3 "${repo[@]}" --stages canary,100 \
  --soak 1h --enrolment enrolled.txt "${online[@]}"
cp -r device canary
canary=(--model mlp --device cpu --state-dir canary --repository releases --device-key keys/canary.pub)
expect "installed mlp version 3" "$agent" update "${canary[@]}"
expect "the newest release's rollout has not reached this device" "$agent" update "${device[@]}"
expect_error "s of its 3600 s soak" "$release" rollout advance mlp "${repo[@]}" "${online[@]}"
expect "halted (canary inference errors)" "$release" rollout halt mlp "${repo[@]}" --reason "canary inference errors" \
  "${online[@]}"
expect "halted (canary inference errors)" "$release" rollout status mlp "${repo[@]}"
expect "rolled back from version 3, whose rollout was halted; version 2 is active" "$agent" update \
  "${canary[@]}"
expect "0 problem(s)" "$release" verify "${repo[@]}"

# TUF tooling reads the repository: securesystemslib agrees on canonical JSON, key ids and signatures.
"$interop" releases >out 2>err || fail "interop check: $(cat err)"
grep -q "and 2 delegated role(s)" out || fail "interop check did not see the delegated role: $(cat out)"
echo "release CLI: all checks passed"
