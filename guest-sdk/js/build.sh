#!/usr/bin/env bash
# Build a JavaScript handler app into a wasmpod component: a queue handler
# (world handler, the default) or, with --world http-handler, an HTTP
# handler for a load-balancing endpoint.
#
#   guest-sdk/js/build.sh APP_DIR OUT.wasm [--entry FILE] [--world handler|http-handler]
#
# APP_DIR holds the app's module (app.js by default), which imports
# 'wasmpod-sdk' and registers a handler (or a Router with serveHttp(app));
# it may import other files of its own by relative path. The pinned tools (package-lock.json) are installed
# into guest-sdk/js/node_modules on first use.
set -euo pipefail
SDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# npm writes node_modules/.package-lock.json on install; a newer lock file
# means the pins changed since.
if [ ! -f "$SDK_DIR/node_modules/.package-lock.json" ] \
  || [ "$SDK_DIR/package-lock.json" -nt "$SDK_DIR/node_modules/.package-lock.json" ]; then
  echo "installing componentize-js and jco into $SDK_DIR/node_modules" >&2
  # Not `npm ci`: the lock leaves out optional per-platform binaries the
  # registry does not list, and `npm ci` refuses such a lock as out of sync.
  # `install --no-save` follows the lock and never rewrites it.
  (cd "$SDK_DIR" && npm install --no-save --no-audit --no-fund --loglevel=error >&2)
fi
exec node "$SDK_DIR/build.mjs" "$@"
