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
    # Per binary (the end-to-end suite is one, `e2e`); within it, libtest
    # on stable reports no per-test times, only the tests that ran past
    # 60 seconds.
    echo "== slowest test binaries"
    awk '/^ +Running /{name=$NF; gsub(/[()]/, "", name); sub(/.*\//, "", name); sub(/-[0-9a-f]+$/, "", name)}
      /^ +Doc-tests /{name="doc-tests " $2}
      /^test result:/{for(i=1;i<=NF;i++) if($i=="in") print $(i+1), name}' \
      "$ROOT/target/test-output.txt" | sort -rn | head -12
    if grep -q 'has been running for over' "$ROOT/target/test-output.txt"; then
      echo "== tests that ran past 60 s"
      sed -n 's/^test \(.*\) has been running for over.*/  \1/p' "$ROOT/target/test-output.txt"
    fi
  fi
  echo "== total $((SECONDS - SUITE_START))s (exit $rc)"
}
rm -f "$ROOT/target/test-output.txt"
trap summary EXIT
stage "setup (scripts/setup.sh: toolchain target, Debian packages, Python venv)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"

# The dashboard's browser test (tests/e2e/dashboard.rs) drives Debian's
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

# Lints ride on the builds. `cargo clippy` is `cargo check` with
# clippy-driver as cargo's workspace wrapper; here the wrapper is on the
# builds the suite needs anyway (the guests for wasm, the tests), so every
# workspace crate is linted while it is compiled and the dependencies are
# compiled once, for the tests, not a second time just to be checked.
# CLIPPY_ARGS is -D warnings: any rustc or clippy warning fails the build,
# in the host crates (lib, bins, tests, benches, examples) and the guests.
# The wrapper changes the crates' build hashes, so it stays exported for
# everything below: the tests' own cargo builds of the examples and the
# fuzz stage's then find what these builds made.
CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
if [ ! -x "$CLIPPY_DRIVER" ]; then
  echo "error: clippy-driver not found: rustup component add clippy" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

# The release build the end-to-end tests load: every guest crate, the SDK
# and the examples, linted. tests/common/mod.rs (GUEST_BUILD) and
# scripts/fuzz.sh run the same build and find it done.
stage "guests: release build for wasm32-wasip2, linted (clippy -D warnings)"
cargo build --release --target wasm32-wasip2 --workspace --exclude wasmpod --exclude wasmpod-tensor

stage "guest SDK glue (Python unittest, node --test)"
python3 -m unittest discover -s guest-sdk/python/tests
(cd guest-sdk/js && node --test test/)

stage "building the Python and JavaScript examples (componentize-py, componentize-js)"
guest-sdk/build-all.sh

# The host side of `cargo test --workspace`: the host crates, and the guest
# crates that have tests of their own (the SDK, embeddings and the
# http-embeddings copy of its code, llm); the other examples are built for
# wasm only.
TEST_PACKAGES=(--workspace --exclude example-echo --exclude example-stream
  --exclude example-sleep --exclude example-fail --exclude example-mlp
  --exclude example-gpu-bench --exclude example-bigmodel
  --exclude example-http-hello --exclude example-diffusion --exclude example-resnet)
stage "cargo test --no-run: every test, bench and example target, linted"
cargo test "${TEST_PACKAGES[@]}" --all-targets --no-run

stage "cargo test"
cargo test "${TEST_PACKAGES[@]}" 2>&1 | tee target/test-output.txt
# Never a pass on zero tests: the end-to-end binary and the suite as a
# whole must each have run some.
awk '/^ +Running /{bin=$NF} /^test result:/{n+=$4; if (bin ~ /\/e2e-[0-9a-f]+\)$/) e2e+=$4}
  END{exit !(n > 0 && e2e > 0)}' target/test-output.txt || { echo "no tests ran (or none end to end)"; exit 1; }

stage "fuzz: schemathesis against a live wasmpod serve (every route vs /openapi.json)"
FUZZ_WASMPOD="$ROOT/target/debug/wasmpod" ./scripts/fuzz.sh
