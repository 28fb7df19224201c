#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and end-to-end tests
# that build the example components and drive the real `wasmpod` binary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE_START=$SECONDS
STAGES=()
# `stage NAME` starts a timed stage; the summary at exit (pass or fail)
# says where the suite's time went, with each test binary's own time.
stage() {
  STAGES+=("$((SECONDS - SUITE_START)) $1")
  echo "== $1"
}
summary() {
  local rc=$? i next
  echo "== time per stage (seconds from the start)"
  for ((i = 0; i < ${#STAGES[@]}; i++)); do
    next=$((SECONDS - SUITE_START))
    [ $((i + 1)) -lt ${#STAGES[@]} ] && next=${STAGES[$((i + 1))]%% *}
    printf '%6ss  +%-5s %s\n' "${STAGES[$i]%% *}" "$((next - ${STAGES[$i]%% *}))" "${STAGES[$i]#* }"
  done
  if [ -f "$ROOT/target/test-output.txt" ]; then
    echo "== slowest test binaries"
    awk '/^ +Running /{name=$2} /^test result:/{for(i=1;i<=NF;i++) if($i=="in") print $(i+1), name}' \
      "$ROOT/target/test-output.txt" | sort -rn | head -12
  fi
  echo "== total $((SECONDS - SUITE_START))s (exit $rc)"
}
rm -f "$ROOT/target/test-output.txt"
trap summary EXIT
stage "setup (scripts/setup.sh: toolchain target, Debian packages, Python venv)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"

# The dashboard's browser test (tests/dashboard.rs) drives Debian's
# Chromium; playwright-core comes from npm (tests/dashboard/package-lock.json).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "   installing Debian's chromium (the dashboard's browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the dashboard test needs Debian's chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
if [ ! -f tests/dashboard/node_modules/playwright-core/package.json ]; then
  (cd tests/dashboard && npm ci --no-audit --no-fund --loglevel=error)
fi

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy (host)"
cargo clippy --all-targets -- -D warnings
stage "cargo clippy (guests, wasm32-wasip2)"
cargo clippy --target wasm32-wasip2 --exclude wasmpod --exclude wasmpod-tensor --workspace -- -D warnings

stage "guest SDK glue (Python unittest, node --test)"
python3 -m unittest discover -s guest-sdk/python/tests
(cd guest-sdk/js && node --test test/)

stage "building the Python and JavaScript examples (componentize-py, componentize-js)"
guest-sdk/build-all.sh

stage "cargo test"
cargo test --workspace --exclude example-echo --exclude example-stream \
  --exclude example-sleep --exclude example-fail --exclude example-mlp --exclude example-gpu-bench --exclude example-bigmodel 2>&1 | tee target/test-output.txt
grep -q "test result: ok" target/test-output.txt || { echo "no tests ran"; exit 1; }

stage "fuzz: schemathesis against a live wasmpod serve (every route vs /openapi.json)"
FUZZ_WASMPOD="$ROOT/target/debug/wasmpod" ./scripts/fuzz.sh
