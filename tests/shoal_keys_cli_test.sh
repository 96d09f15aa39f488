#!/usr/bin/env bash
# End-to-end check of the shoal-keys command as an operator runs it.
# Usage: shoal_keys_cli_test.sh PATH_TO_SHOAL_KEYS
set -euo pipefail
keys="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$keys" generate --role server --out "$dir/server.key" >"$dir/out"
grep -q "wrote server key" "$dir/out" || fail "generate did not report the key"
[ "$(stat -c %a "$dir/server.key")" = 600 ] || fail "secret key file is not mode 600"
[ -f "$dir/server.pub" ] || fail "no public key file written"

secret_id=$("$keys" show "$dir/server.key" | awk '/key id/ {print $3}')
public_id=$("$keys" show "$dir/server.pub" | awk '/key id/ {print $3}')
[ -n "$secret_id" ] && [ "$secret_id" = "$public_id" ] || fail "key ids differ: '$secret_id' vs '$public_id'"
"$keys" show "$dir/server.pub" | grep -q "role:       server" || fail "role not shown"

before=$(cat "$dir/server.key")
if "$keys" generate --out "$dir/server.key" 2>"$dir/err"; then fail "overwrote an existing key"; fi
grep -q "refusing to overwrite" "$dir/err" || fail "no reason given for refusing to overwrite"
[ "$(cat "$dir/server.key")" = "$before" ] || fail "existing key changed"

chmod 644 "$dir/server.key"
if "$keys" show "$dir/server.key" 2>"$dir/err"; then fail "accepted a world-readable secret key"; fi
grep -q "chmod 600" "$dir/err" || fail "no chmod hint for a world-readable key"

chmod 600 "$dir/server.key"
"$keys" public "$dir/server.key" --out "$dir/copy.pub" >/dev/null
cmp -s "$dir/server.pub" "$dir/copy.pub" || fail "re-derived public file differs"
echo "shoal-keys end-to-end: ok"
