#!/usr/bin/env bash
# Build a Python handler app into a wasmpod component with componentize-py:
# world wasmpod:serverless/handler (a queue handler, the default) or, with
# --world http-handler, an HTTP handler for a load-balancing endpoint.
#
#   guest-sdk/python/build.sh APP_DIR OUT.wasm [--module NAME] [--path DIR]...
#                                               [--world handler|http-handler]
#
# APP_DIR holds the app's module (app.py by default, or NAME.py / NAME/),
# which imports wasmpod_sdk and registers a handler (or, for an HTTP
# handler, a wasmpod_sdk.http.Router with http.serve(app)). --path adds a directory
# of extra pure-Python packages (e.g. from `pip install --target DIR`).
# componentize-py is installed into the repo's .venv on first use (pinned in
# requirements.txt); set COMPONENTIZE_PY to use another copy.
set -euo pipefail

SDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SDK_DIR/../.." && pwd)"

usage() {
  echo "usage: $0 APP_DIR OUT.wasm [--module NAME] [--path DIR]... [--world handler|http-handler]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
APP_DIR="$1"
OUT="$2"
shift 2
MODULE=app
WORLD=handler
EXTRA_PATHS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --module) [ $# -ge 2 ] || usage; MODULE="$2"; shift 2 ;;
    --path) [ $# -ge 2 ] || usage; EXTRA_PATHS+=("-p" "$(cd "$2" && pwd)"); shift 2 ;;
    --world) [ $# -ge 2 ] || usage; WORLD="$2"; shift 2 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done

[ -d "$APP_DIR" ] || { echo "error: app directory $APP_DIR does not exist" >&2; exit 1; }
APP_DIR="$(cd "$APP_DIR" && pwd)"
if [[ ! "$MODULE" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
  echo "error: --module must be a Python module name, got '$MODULE'" >&2
  exit 1
fi
case "$WORLD" in
  handler | http-handler) ;;
  *) echo "error: --world must be handler or http-handler, got '$WORLD'" >&2; exit 1 ;;
esac
if [ ! -f "$APP_DIR/$MODULE.py" ] && [ ! -f "$APP_DIR/$MODULE/__init__.py" ]; then
  echo "error: $APP_DIR has no $MODULE.py (or package $MODULE/); name the app's module with --module" >&2
  exit 1
fi

# Find componentize-py, installing the pinned version into .venv if needed.
PINNED="$(sed -n 's/^componentize-py==//p' "$SDK_DIR/requirements.txt")"
if [ -n "${COMPONENTIZE_PY:-}" ]; then
  TOOL="$COMPONENTIZE_PY"
else
  TOOL="$ROOT/.venv/bin/componentize-py"
  if [ ! -x "$TOOL" ] || [ "$("$TOOL" --version 2>/dev/null)" != "componentize-py $PINNED" ]; then
    echo "installing componentize-py $PINNED into $ROOT/.venv" >&2
    [ -x "$ROOT/.venv/bin/python3" ] || python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$SDK_DIR/requirements.txt" >&2
  fi
fi

# componentize-py looks for the exports (class WitWorld) in the module it is
# given; this entry module imports the app, which registers its handler,
# then re-exports the SDK's WitWorld. Both run at build time: the component
# starts from the snapshot taken after this import.
ENTRY_DIR="$(mktemp -d)"
trap 'rm -rf "$ENTRY_DIR"' EXIT
if [ "$WORLD" = http-handler ]; then
  cat > "$ENTRY_DIR/wasmpod_entry.py" <<PY
import $MODULE  # noqa: F401 - registers the app's router
from wasmpod_sdk._glue import REGISTRY
from wasmpod_sdk._http_world import IncomingHandler, WitWorld  # noqa: F401 - the exports

if REGISTRY.app is None:
    raise SystemExit(
        "wasmpod: $MODULE registered no HTTP app; build a wasmpod_sdk.http.Router "
        "and call wasmpod_sdk.http.serve(app)"
    )
PY
else
  cat > "$ENTRY_DIR/wasmpod_entry.py" <<PY
import $MODULE  # noqa: F401 - registers the app's handler
from wasmpod_sdk._glue import REGISTRY
from wasmpod_sdk._world import WitWorld  # noqa: F401 - the component's exports

if REGISTRY.handle is None:
    raise SystemExit(
        "wasmpod: $MODULE registered no handler; decorate a function with "
        "@wasmpod_sdk.handler or call wasmpod_sdk.serve(handle)"
    )
PY
fi

mkdir -p "$(dirname "$OUT")"
# VIRTUAL_ENV would add that environment's site-packages to the component;
# a Rust backtrace would bury the app's own traceback when its import fails.
env -u VIRTUAL_ENV -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$TOOL" --quiet -d "$ROOT/wit" -w "$WORLD" componentize wasmpod_entry \
  -p "$ENTRY_DIR" -p "$SDK_DIR" -p "$APP_DIR" "${EXTRA_PATHS[@]}" -o "$OUT"
echo "built $OUT ($(wc -c < "$OUT") bytes)" >&2
