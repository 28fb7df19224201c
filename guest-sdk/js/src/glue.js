// The glue between the component's `init`/`handle` exports and the user's
// functions: JSON in, the user's function, JSON out, every failure turned
// into one error string. No WIT imports, so Node can test it as is.

/** `Name: message` for an Error, the value itself for a thrown string, JSON
 * for other thrown values. */
export function describeError(error) {
  if (error instanceof Error) {
    const name = error.name || error.constructor?.name || 'Error';
    return error.message ? `${name}: ${error.message}` : name;
  }
  if (typeof error === 'string') return error;
  try {
    const text = JSON.stringify(error);
    if (text !== undefined) return `thrown value: ${text}`;
  } catch {
    // fall through to String()
  }
  return `thrown value: ${String(error)}`;
}

/** A failed job or init: `message` is the job's error, `details` the stack
 * worth logging. */
export class HandlerFailure extends Error {
  constructor(message, details) {
    super(message);
    this.name = 'HandlerFailure';
    this.details = details;
  }
}

function failure(error) {
  const stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : '';
  const details = stack ? `${describeError(error)}\n${stack}` : '';
  return new HandlerFailure(describeError(error), details);
}

export function decodeInput(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HandlerFailure(`invalid input: ${error.message}`);
  }
}

/** JSON text of `value`; `undefined` (and functions) become `null`, as a
 * handler that returns nothing means "no output". */
export function encodeJson(value, what) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`the ${what} could not be serialized to JSON: ${describeError(error)}`);
  }
  return text === undefined ? 'null' : text;
}

function encodeOutput(value) {
  try {
    return encodeJson(value, "handler's output");
  } catch (error) {
    throw new HandlerFailure(error.message);
  }
}

/** The handler and init function an app registered while its module was
 * evaluated (at build time: the component starts from that snapshot). */
export class Registry {
  constructor() {
    this.handle = null;
    this.init = null;
    // An HTTP handler's Router (world http-handler) instead of `handle`.
    this.app = null;
  }

  setApp(app) {
    if (app === null || typeof app !== 'object' || typeof app.handle !== 'function') {
      throw new TypeError('the HTTP app must be a Router (new wasmpod.Router())');
    }
    if (this.app !== null && this.app !== app) throw new Error('an HTTP app is already registered; an app registers exactly one Router');
    this.app = app;
    return app;
  }

  setHandler(fn) {
    requireFunction(fn, 'handler');
    if (this.handle !== null && this.handle !== fn) {
      throw new Error(`a handler is already registered (${nameOf(this.handle)}); an app registers exactly one, not also ${nameOf(fn)}`);
    }
    this.handle = fn;
    return fn;
  }

  setInit(fn) {
    requireFunction(fn, 'init');
    if (this.init !== null && this.init !== fn) {
      throw new Error(`an init function is already registered (${nameOf(this.init)}); an app registers at most one, not also ${nameOf(fn)}`);
    }
    this.init = fn;
    return fn;
  }

  /** Runs the registered init, if any; rejects with HandlerFailure. */
  async runInit() {
    if (this.init === null) return;
    try {
      await this.init();
    } catch (error) {
      throw failure(error);
    }
  }

  /** Runs the handler on one job's input JSON and resolves to the output
   * JSON; rejects with HandlerFailure. */
  async runHandle(inputText) {
    if (this.handle === null) {
      throw new HandlerFailure('no handler is registered: call wasmpod.serve(handle) or wasmpod.handler(handle)');
    }
    const input = decodeInput(inputText);
    let output;
    try {
      output = await this.handle(input);
    } catch (error) {
      throw failure(error);
    }
    return encodeOutput(output);
  }
}

function requireFunction(fn, role) {
  if (typeof fn !== 'function') {
    throw new TypeError(`the ${role} must be a function, got ${fn === null ? 'null' : typeof fn}`);
  }
}

function nameOf(fn) {
  return fn.name || 'an anonymous function';
}

export const REGISTRY = new Registry();
