// The JavaScript SDK as an HTTP handler (world http-handler, load-balancing
// endpoints) sees it: routes on a Router, each a (sync or async) function
// from a Request to what it answers, plus the same tensors, models and
// device as a queue handler (logs go to the request).
//
//   import * as wasmpod from 'wasmpod-sdk';
//
//   const app = new wasmpod.Router();
//   app.get('/ping', () => 'ok');
//   app.get('/hello/:name', (req) => ({ greeting: `hello, ${req.params.name}` }));
//   app.post('/echo', (req) => new wasmpod.Response(req.chunks()));
//   wasmpod.serveHttp(app);
//
// A route returns a Response, text, bytes, undefined (204), an (async)
// iterable of pieces (streamed, each sent as produced) or a JSON-able
// value; throwing HTTPError(status, message) answers that status. Build
// with `guest-sdk/js/build.sh APP_DIR OUT.wasm --world http-handler`.

import { REGISTRY } from './glue.js';

export { Tensor, tidy, DTYPES } from './tensor.js';
export { Model, listModels } from './model.js';
export { log, debug, info, warn, error, LOG_LEVELS } from './log.js';
export { devices, quotaBytes, usedBytes } from './device.js';
export { WasmpodError, TensorError, ModelError } from './errors.js';
export { Router, Request, Response, Headers, HTTPError } from './http-glue.js';

/** Register `fn()` (sync or async) to run once per instance before its
 * first request; throwing there fails the worker's start. */
export function init(fn) {
  return REGISTRY.setInit(fn);
}

/** Register `app` (a Router) to answer every request, and optionally an
 * init: `serveHttp(app, { init })`. */
export function serveHttp(app, options = {}) {
  REGISTRY.setApp(app);
  if (options.init !== undefined) REGISTRY.setInit(options.init);
  return app;
}
