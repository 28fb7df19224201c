// Errors the SDK throws for failures the host reports as WIT error values.

/** Base class of every error the SDK throws for a host-reported failure. */
export class WasmpodError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WasmpodError';
  }
}

/** A tensor op failed. `kind` is the WIT case: 'shape-mismatch',
 * 'dtype-mismatch', 'invalid-argument', 'quota-exceeded' or 'device-fault'. */
export class TensorError extends WasmpodError {
  constructor(kind, detail) {
    super(`${kind.replaceAll('-', ' ')}: ${detail}`);
    this.name = 'TensorError';
    this.kind = kind;
    this.detail = detail;
  }
}

/** A model call failed. `kind` is 'not-found', 'invalid' or 'tensor' (then
 * `tensorError` holds the TensorError). */
export class ModelError extends WasmpodError {
  constructor(kind, detail, tensorError = undefined) {
    const prefix = { 'not-found': 'not found', invalid: 'invalid model' }[kind];
    super(prefix ? `${prefix}: ${detail}` : String(detail));
    this.name = 'ModelError';
    this.kind = kind;
    this.detail = detail;
    this.tensorError = tensorError;
  }
}

/** A progress update or streamed chunk was not delivered. */
export class JobError extends WasmpodError {
  constructor(message) {
    super(message);
    this.name = 'JobError';
  }
}

/** A thrown WIT error value (jco's ComponentError carries it as `payload`),
 * or undefined when `error` is something else. */
export function witPayload(error) {
  return error !== null && typeof error === 'object' && 'payload' in error ? error.payload : undefined;
}

export function tensorErrorFrom(payload) {
  return new TensorError(payload.tag, payload.val);
}
