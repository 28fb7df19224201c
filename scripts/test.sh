#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and end-to-end tests
# that build the example components and drive the real `wasmpod` binary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"

# The dashboard's browser test (tests/dashboard.rs) drives Debian's
# Chromium; playwright-core comes from npm (tests/dashboard/package-lock.json).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian's chromium (the dashboard's browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the dashboard test needs Debian's chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
if [ ! -f tests/dashboard/node_modules/playwright-core/package.json ]; then
  (cd tests/dashboard && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (host)"
cargo clippy --all-targets -- -D warnings
echo "== cargo clippy (guests, wasm32-wasip2)"
cargo clippy --target wasm32-wasip2 --exclude wasmpod --exclude wasmpod-tensor --workspace -- -D warnings

echo "== guest SDK glue (Python unittest, node --test)"
python3 -m unittest discover -s guest-sdk/python/tests
(cd guest-sdk/js && node --test test/)

echo "== building the Python and JavaScript examples (componentize-py, componentize-js)"
guest-sdk/build-all.sh

echo "== cargo test"
cargo test --workspace --exclude example-echo --exclude example-stream \
  --exclude example-sleep --exclude example-fail --exclude example-mlp --exclude example-gpu-bench --exclude example-bigmodel 2>&1 | tee target/test-output.txt
grep -q "test result: ok" target/test-output.txt || { echo "no tests ran"; exit 1; }

echo "== fuzz: schemathesis against a live wasmpod serve (every route vs /openapi.json)"
./scripts/fuzz.sh
