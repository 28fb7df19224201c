// The JavaScript SDK for wasmpod handlers.
//
// A handler is a function (sync or async) from a JSON value (the job's
// input) to a JSON-able value (the job's output); throwing fails the job
// with `Name: message`.
//
//   import * as wasmpod from 'wasmpod-sdk';
//
//   wasmpod.serve((input) => {
//     wasmpod.progress({ step: 'greeting' });
//     return { greeting: `hello, ${input.name}` };
//   });
//
// `serve(handle, { init })` also registers a per-instance setup (open models
// there, not at module top level). Build with
// `guest-sdk/js/build.sh APP_DIR OUT.wasm`.

import { REGISTRY } from './glue.js';

export { Tensor, tidy, DTYPES } from './tensor.js';
export { Model, listModels } from './model.js';
export { progress, stream, log, debug, info, warn, error, jobId, cancelled, LOG_LEVELS } from './job.js';
export { devices, quotaBytes, usedBytes } from './device.js';
export { WasmpodError, TensorError, ModelError, JobError } from './errors.js';

/** Register `fn(input) -> output` (sync or async) as the job handler. */
export function handler(fn) {
  return REGISTRY.setHandler(fn);
}

/** Register `fn()` (sync or async) to run once per instance before its
 * first job; throwing there fails the worker's start, not a job. */
export function init(fn) {
  return REGISTRY.setInit(fn);
}

/** Register the handler, and optionally init: `serve(handle, { init })`. */
export function serve(handle, options = {}) {
  REGISTRY.setHandler(handle);
  if (options.init !== undefined) REGISTRY.setInit(options.init);
}
