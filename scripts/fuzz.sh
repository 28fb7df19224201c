#!/usr/bin/env bash
# The fuzz stage of `make test`: schemathesis (pinned in
# scripts/requirements-test.txt) against a live `wasmpod serve`, checking
# every route against /openapi.json: no 5xx, every status code, content
# type, header and body as the document says, and no request over its
# timeout (a hang). Three passes, each bounded in time:
#   1. an admin key, every route but key revocation, with no endpoint yet
#      (a stateful run could otherwise scale one to a thousand workers);
#   2. key revocation with generated ids only (a stateful run would find,
#      and revoke, the key the run uses);
#   3. an invoke key of a live endpoint ("fuzz", echo handler): its /v2
#      routes run real jobs, every /v1 route must answer 403.
# Webhooks are off (--no-webhooks): no fuzzed URL is ever contacted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v schemathesis >/dev/null || source "$ROOT/scripts/setup.sh"

# make test passes the binary its `cargo test` just built (FUZZ_WASMPOD):
# `cargo build -p wasmpod` unifies features differently from the
# workspace's test build and would link the binary over again.
if [ -n "${FUZZ_WASMPOD:-}" ] && [ -x "$FUZZ_WASMPOD" ]; then
  WASMPOD="$FUZZ_WASMPOD"
else
  cargo build --quiet -p wasmpod
  WASMPOD="$ROOT/target/debug/wasmpod"
fi
# Every guest crate, as make test's guests stage and tests/common build
# them (under make test, already built): `-p example-echo` alone would
# unify the shared dependencies' features differently and compile them again.
cargo build --quiet --release --target wasm32-wasip2 --workspace --exclude wasmpod --exclude wasmpod-tensor
ECHO="$ROOT/target/wasm32-wasip2/release/example_echo.wasm"

WORK="$(mktemp -d)"
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
ADMIN="wpk_fuzz_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
: >"$WORK/stdout"
WASMPOD_ADMIN_KEY="$ADMIN" WASMPOD_LOG=warn "$WASMPOD" --home "$WORK/home" serve \
  --listen 127.0.0.1:0 --no-webhooks --runsync-wait 2s --runsync-max-wait 5s \
  >"$WORK/stdout" 2>"$WORK/serve.log" &
SERVER=$!
BASE=
for _ in $(seq 1 150); do
  BASE="$(sed -n 's/^listening on //p' "$WORK/stdout")"
  [ -n "$BASE" ] && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.log"; echo "error: wasmpod serve exited" >&2; exit 1; }
  sleep 0.2
done
[ -n "$BASE" ] || { echo "error: wasmpod serve did not start" >&2; exit 1; }

failed=0
pass() {
  local name="$1"; shift
  echo "-- fuzz: $name"
  # 240 s bounds a pass as a whole; each request has 30 s (fuzz.toml).
  # Run from the scratch directory: schemathesis keeps its example
  # database (.schemathesis/) in the working directory.
  if ! (cd "$WORK" && timeout 240 schemathesis --config-file "$ROOT/scripts/fuzz.toml" \
      run "$BASE/openapi.json" --no-color "$@") >"$WORK/pass.txt" 2>&1; then
    cat "$WORK/pass.txt"
    echo "error: fuzz pass '$name' failed (or timed out)" >&2
    failed=1
  else
    sed -n '/^Test cases:/,/^$/p' "$WORK/pass.txt" | sed 's/^/   /'
  fi
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.log"; echo "error: wasmpod serve died during '$name'" >&2; exit 1; }
}

pass "admin key, every route" -H "Authorization: Bearer $ADMIN" --exclude-operation-id revoke_key
pass "admin key, key revocation" -H "Authorization: Bearer $ADMIN" \
  --include-operation-id revoke_key --phases coverage,fuzzing

api() { curl -fsS -H "Authorization: Bearer $ADMIN" "$@"; }
digest="$(api -H 'Content-Type: application/wasm' --data-binary "@$ECHO" "$BASE/v1/handlers" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')"
api -H 'Content-Type: application/json' \
  -d "{\"id\": \"fuzz\", \"handler\": \"$digest\", \"max_workers\": 1}" "$BASE/v1/endpoints" >/dev/null
INVOKE="$(api -H 'Content-Type: application/json' \
  -d '{"name": "fuzz", "scope": "invoke", "endpoint_id": "fuzz"}' "$BASE/v1/keys" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
pass "invoke key of a live endpoint" -H "Authorization: Bearer $INVOKE"

if grep -q "panicked" "$WORK/serve.log"; then
  grep -B2 -A8 "panicked" "$WORK/serve.log"
  echo "error: wasmpod serve panicked during the fuzz stage" >&2
  failed=1
fi
[ "$failed" = 0 ] || exit 1
echo "fuzz stage passed"
