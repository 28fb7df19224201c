#!/usr/bin/env bash
# Build every Python and JavaScript example into
# target/guest/<lang>-<name>.wasm (e.g. target/guest/python-mlp.wasm;
# examples named http-* are HTTP handlers, built for world http-handler),
# installing the pinned tools first where they are missing: componentize-py
# into .venv (python/requirements.txt), componentize-js/jco into
# guest-sdk/js/node_modules (js/package-lock.json).
#
#   guest-sdk/build-all.sh [python|js]...   (default: both)
#
# A component is rebuilt only when its app, the SDK, the WIT or the tool pins
# changed since it was built; set FORCE=1 to rebuild all. Prints one line
# per component: name, bytes, build seconds (0 when up to date).
set -euo pipefail
SDK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SDK_ROOT/.." && pwd)"
OUT_DIR="$ROOT/target/guest"
mkdir -p "$OUT_DIR"

LANGS=("$@")
[ ${#LANGS[@]} -gt 0 ] || LANGS=(python js)

# True when $1 is missing or older than any file under the other arguments.
stale() {
  local out="$1"
  shift
  [ -f "$out" ] || return 0
  [ "${FORCE:-0}" = 1 ] && return 0
  [ -n "$(find "$@" -type f -newer "$out" -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print -quit)" ]
}

build_lang() {
  local lang="$1" builder sdk_inputs
  case "$lang" in
    python)
      builder="$SDK_ROOT/python/build.sh"
      sdk_inputs=("$SDK_ROOT/python/wasmpod_sdk" "$SDK_ROOT/python/build.sh" "$SDK_ROOT/python/requirements.txt")
      ;;
    js)
      builder="$SDK_ROOT/js/build.sh"
      sdk_inputs=("$SDK_ROOT/js/src" "$SDK_ROOT/js/build.sh" "$SDK_ROOT/js/build.mjs" "$SDK_ROOT/js/package-lock.json")
      ;;
    *)
      echo "error: unknown language '$lang' (expected python or js)" >&2
      exit 2
      ;;
  esac
  local app name out start ms seconds world
  for app in "$ROOT"/examples/"$lang"/*/; do
    app="${app%/}"
    name="$(basename "$app")"
    out="$OUT_DIR/$lang-$name.wasm"
    world=handler
    case "$name" in http-*) world=http-handler ;; esac
    seconds=0
    if stale "$out" "$app" "${sdk_inputs[@]}" "$ROOT/wit"; then
      start=$(date +%s%N)
      "$builder" "$app" "$out.tmp" --world "$world" 2>"$OUT_DIR/$lang-$name.log" || {
        cat "$OUT_DIR/$lang-$name.log" >&2
        echo "error: building $lang example $name failed" >&2
        exit 1
      }
      mv "$out.tmp" "$out"
      ms=$((($(date +%s%N) - start) / 1000000))
      seconds="$((ms / 1000)).$(((ms % 1000) / 100))"
    fi
    printf '%-24s %10d bytes %7s s\n' "$lang-$name.wasm" "$(wc -c <"$out")" "$seconds"
  done
}

for lang in "${LANGS[@]}"; do
  build_lang "$lang"
done
