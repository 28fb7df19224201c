// The running job: its id, cancellation, progress, streamed chunks and log
// lines attributed to it.

import * as witJob from 'wasmpod:serverless/job@0.1.0';
import { encodeJson } from './glue.js';
import { JobError, witPayload } from './errors.js';

function send(op, value, what) {
  let json;
  try {
    json = encodeJson(value, what);
  } catch (error) {
    throw new JobError(error.message);
  }
  try {
    op(json);
  } catch (error) {
    const payload = witPayload(error);
    if (typeof payload !== 'string') throw error;
    throw new JobError(`the host refused the ${what}: ${payload}`);
  }
}

/** Report progress (any JSON-able value); while the job runs, `/status`
 * shows the latest value as its `output`. */
export function progress(value) {
  send(witJob.progress, value, 'progress value');
}

/** Stream a partial output (any JSON-able value); clients read each chunk
 * once, in order, from `/stream`. */
export function stream(value) {
  send(witJob.stream, value, 'streamed chunk');
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];

/** Write a log line attributed to the job (or to the worker in init). */
export function log(message, level = 'info') {
  if (!LOG_LEVELS.includes(level)) throw new TypeError(`unknown log level ${JSON.stringify(level)}; expected one of ${LOG_LEVELS.join(', ')}`);
  witJob.log(level, String(message));
}

export const debug = (message) => log(message, 'debug');
export const info = (message) => log(message, 'info');
export const warn = (message) => log(message, 'warn');
export const error = (message) => log(message, 'error');

/** The id of the job being handled; empty during init. */
export function jobId() {
  return witJob.id();
}

/** True once the job was cancelled; a long handler should check now and
 * then and return early. */
export function cancelled() {
  return witJob.cancelled();
}
