#!/usr/bin/env bash
# shoal-tuf end to end, as standard TUF tooling drives a client: init,
# refresh and download against a repository in the form python-tuf writes
# (made by fixtures/make_tuf_repository.py with securesystemslib: ECDSA and
# RSA-PSS keys in PEM, delegations, consistent snapshots, a root rotation),
# served over HTTP by Python's http.server. Checks the delegation rules,
# cache reuse, refusals of attacks, and that every failure exits exactly 1.
# Usage: tuf_cli_test.sh SHOAL_TUF
set -euo pipefail
tuf="$1"
fixtures="$(cd "$(dirname "$0")" && pwd)/updater/fixtures"
dir=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$dir"

/usr/bin/python3 "$fixtures/make_tuf_repository.py" repo
mkfifo server.out
/usr/bin/python3 -u -m http.server 0 --bind 127.0.0.1 --directory repo >server.out 2>requests.log &
server=$!
exec 3<server.out
read -r banner <&3  # "Serving HTTP on 127.0.0.1 port N (...)": the server is listening
port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' <<<"$banner")
[ -n "$port" ] || fail "no port in the server's banner: $banner"
url="http://127.0.0.1:$port"
client=(--metadata-dir trusted --metadata-url "$url/metadata")
download=("${client[@]}" --target-dir got --target-base-url "$url/targets")

expect() {  # expect STATUS PATTERN COMMAND...: exits with STATUS and says PATTERN
  local status="$1" pattern="$2"; shift 2
  local actual=0
  "$@" >out 2>&1 || actual=$?
  [ "$actual" -eq "$status" ] || fail "'$*' exited $actual, expected $status: $(cat out)"
  grep -q -- "$pattern" out || fail "'$*' said: $(cat out), expected: $pattern"
}
requests_since() {  # the request lines logged after line $1
  tail -n +"$(($1 + 1))" requests.log | sed -n 's/.*"GET \([^ ]*\) .*/\1/p'
}

# init stores the root given and uses no network; a second init is refused.
expect 0 "trusting" "$tuf" --metadata-dir trusted init repo/metadata/1.root.json
cmp trusted/root.json repo/metadata/1.root.json || fail "init did not store the root as given"
[ ! -s requests.log ] || fail "init used the network: $(cat requests.log)"
expect 1 "already exists" "$tuf" --metadata-dir trusted init repo/metadata/1.root.json

# refresh follows the rotation to root 2 and keeps each role's bytes as received.
expect 0 "root version 2, timestamp 1, snapshot 1, targets 1" "$tuf" "${client[@]}" refresh
cmp trusted/root.json repo/metadata/2.root.json || fail "trusted root is not 2.root.json"
cmp trusted/timestamp.json repo/metadata/timestamp.json || fail "trusted timestamp differs"
cmp trusted/snapshot.json repo/metadata/1.snapshot.json || fail "trusted snapshot differs"
cmp trusted/targets.json repo/metadata/1.targets.json || fail "trusted targets differs"
grep -q "GET /metadata/1.snapshot.json" requests.log || fail "consistent snapshot names were not used"

# Unchanged metadata is not downloaded again.
seen=$(wc -l <requests.log)
expect 0 "root version 2" "$tuf" "${client[@]}" refresh
again=$(requests_since "$seen" | tr '\n' ' ')
[ "$again" = "/metadata/3.root.json /metadata/timestamp.json " ] || fail "a second refresh fetched: $again"

# Targets of the top-level role and of delegated roles: a terminating one,
# one by hash prefix, and two levels deep under a role named "a/b".
expect 0 "readme.txt: downloaded [0-9]* bytes (signed by targets)" "$tuf" "${download[@]}" --target-name readme.txt download
expect 0 "models/m.bin: downloaded 2048 bytes (signed by models)" "$tuf" "${download[@]}" --target-name models/m.bin download
expect 0 "signed by hashed" "$tuf" "${download[@]}" --target-name data/blob.bin download
expect 0 "signed by deep" "$tuf" "${download[@]}" --target-name nested/y.txt download
cmp got/readme.txt repo/targets/*.readme.txt || fail "readme.txt differs"
cmp got/models%2Fm.bin repo/targets/models/*.m.bin || fail "models/m.bin differs"
cmp got/nested%2Fy.txt repo/targets/nested/*.y.txt || fail "nested/y.txt differs"
cmp trusted/a%2Fb.json "repo/metadata/1.a%2Fb.json" || fail "role a/b is not kept under its encoded name"
[ -f trusted/deep.json ] && [ -f trusted/models.json ] && [ -f trusted/hashed.json ] || fail "delegated roles not kept"

# A valid cached copy is not downloaded again; several names in one call.
seen=$(wc -l <requests.log)
expect 0 "readme.txt: cached copy is valid" "$tuf" "${download[@]}" --target-name readme.txt \
  --target-name models/m.bin download
grep -q "models/m.bin: cached copy is valid" out || fail "models/m.bin was downloaded again: $(cat out)"
if requests_since "$seen" | grep -q "^/targets/"; then fail "a cached target was fetched"; fi

# Spec 5.6.7: a terminating delegation ends the search; * does not cross /;
# a role must meet its delegator's threshold; a path no role signs.
expect 1 "no role signs target 'models/other.bin'" "$tuf" "${download[@]}" --target-name models/other.bin download
expect 1 "no role signs target 'docs/sub/x.txt'" "$tuf" "${download[@]}" --target-name docs/sub/x.txt download
expect 1 "0 valid signature(s) from the keys delegated to role 'unsigned'" "$tuf" "${download[@]}" \
  --target-name bad/x.bin download
expect 1 "no role signs target 'nothing/here'" "$tuf" "${download[@]}" --target-name nothing/here download

# An arbitrary payload in place of a target is refused and not stored.
rm got/readme.txt
printf 'evil' | dd of="$(echo repo/targets/*.readme.txt)" bs=1 seek=0 conv=notrunc status=none
expect 1 "sha256 is" "$tuf" "${download[@]}" --target-name readme.txt download
[ ! -e got/readme.txt ] || fail "a tampered target was stored"

# A timestamp signed by the rotated-out key, and an expired one, are refused;
# the trusted timestamp stays as it was.
cp repo/metadata/timestamp.json good.timestamp.json
cp repo/attacks/old-key.timestamp.json repo/metadata/timestamp.json
expect 1 "0 valid signature(s) from timestamp keys" "$tuf" "${client[@]}" refresh
cp repo/attacks/expired.timestamp.json repo/metadata/timestamp.json
expect 1 "expired at 2001-01-01T00:00:00Z" "$tuf" "${client[@]}" refresh
cmp trusted/timestamp.json good.timestamp.json || fail "a refused timestamp replaced the trusted one"

# Usage errors and a missing trust directory exit exactly 1 too.
expect 1 "trusts no release root" "$tuf" --metadata-dir nowhere --metadata-url "$url/metadata" refresh
expect 1 "download needs --target-name" "$tuf" "${client[@]}" download
expect 1 "" "$tuf" --metadata-dir trusted --no-such-option refresh
expect 1 "" "$tuf" --metadata-dir trusted
echo "shoal-tuf: all checks passed"
