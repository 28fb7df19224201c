// Log lines of an HTTP handler (world http-handler), through the log
// interface: attributed to the request being served.

import { log as witLog } from 'wasmpod:serverless/log@0.1.0';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];

/** Write a log line attributed to the request (or to the worker in init). */
export function log(message, level = 'info') {
  if (!LOG_LEVELS.includes(level)) throw new RangeError(`unknown log level ${JSON.stringify(level)}; expected one of ${LOG_LEVELS.join(', ')}`);
  witLog(level, String(message));
}

export const debug = (message) => log(message, 'debug');
export const info = (message) => log(message, 'info');
export const warn = (message) => log(message, 'warn');
export const error = (message) => log(message, 'error');
