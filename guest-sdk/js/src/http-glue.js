// The pure part of HTTP handlers: routes and their path patterns, the
// request and response objects, and turning what a route returns (or
// throws) into a response. No WIT imports, so Node can test it as is;
// http-exports.js connects it to wasi:http.

import { describeError } from './glue.js';

const encoder = new TextEncoder();

/** Throw from a route to answer `status` with `{"error": message}`. */
export class HTTPError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'HTTPError';
    this.status = status;
  }
}

/** Request headers, case-insensitive. */
export class Headers {
  constructor(pairs) {
    this.pairs = pairs.map(([k, v]) => [k.toLowerCase(), v]);
  }
  get(name) {
    const key = name.toLowerCase();
    const found = this.pairs.find(([k]) => k === key);
    return found === undefined ? null : found[1];
  }
  getAll(name) {
    const key = name.toLowerCase();
    return this.pairs.filter(([k]) => k === key).map(([, v]) => v);
  }
  has(name) {
    return this.get(name) !== null;
  }
  entries() {
    return this.pairs.slice();
  }
}

function decodeComponent(s) {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return s;
  }
}

/** One request: `method`, `path` (after `/lb/{endpoint}`), `query` (an
 * object of arrays), `headers`, the route's `params`, and the body read on
 * demand: `body()`, `text()`, `json()`, or `chunks()` as it arrives. */
export class Request {
  constructor(method, pathWithQuery, headers, readChunk) {
    this.method = method.toUpperCase();
    const q = pathWithQuery.indexOf('?');
    this.path = (q < 0 ? pathWithQuery : pathWithQuery.slice(0, q)) || '/';
    this.queryString = q < 0 ? '' : pathWithQuery.slice(q + 1);
    this.query = {};
    for (const pair of this.queryString.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = decodeComponent(eq < 0 ? pair : pair.slice(0, eq));
      const value = decodeComponent(eq < 0 ? '' : pair.slice(eq + 1));
      (this.query[key] ??= []).push(value);
    }
    this.headers = new Headers(headers);
    this.params = {};
    this.readChunk = readChunk;
    this.whole = null;
    this.streamed = false;
  }

  queryParam(name, fallback = null) {
    return this.query[name]?.[0] ?? fallback;
  }

  /** The body in pieces as they arrive (once). */
  *chunks(size = 65536) {
    if (this.whole !== null) {
      yield this.whole;
      return;
    }
    this.streamed = true;
    for (;;) {
      const chunk = this.readChunk(size);
      if (chunk.length === 0) return;
      yield chunk;
    }
  }

  body() {
    if (this.whole === null) {
      const parts = this.streamed ? [] : [...this.chunks()];
      const total = parts.reduce((n, p) => n + p.length, 0);
      const out = new Uint8Array(total);
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      this.whole = out;
    }
    return this.whole;
  }

  text() {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.body());
    } catch {
      throw new HTTPError(400, 'the request body is not UTF-8 text');
    }
  }

  json() {
    try {
      return JSON.parse(this.text());
    } catch (error) {
      if (error instanceof HTTPError) throw error;
      throw new HTTPError(400, `the request body is not valid JSON: ${error.message}`);
    }
  }
}

function isIterable(value) {
  return value != null && (typeof value[Symbol.iterator] === 'function' || typeof value[Symbol.asyncIterator] === 'function');
}

/** A response: `body` is a string, bytes, or an (async) iterable of them,
 * streamed piece by piece; `headers` an object or pairs. */
export class Response {
  constructor(body = new Uint8Array(0), { status = 200, headers = {} } = {}) {
    this.status = status;
    const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
    this.headers = pairs.map(([k, v]) => [String(k).toLowerCase(), String(v)]);
    if (typeof body === 'string') {
      body = encoder.encode(body);
      this.defaultHeader('content-type', 'text/plain; charset=utf-8');
    } else if (body instanceof ArrayBuffer) {
      body = new Uint8Array(body);
    }
    if (body instanceof Uint8Array) this.defaultHeader('content-type', 'application/octet-stream');
    else if (!isIterable(body)) throw new TypeError('a Response body is a string, bytes, or an iterable of pieces');
    this.body = body;
  }

  static json(value, init = {}) {
    const response = new Response(JSON.stringify(value), init);
    response.setHeader('content-type', 'application/json');
    return response;
  }

  setHeader(name, value) {
    const key = name.toLowerCase();
    this.headers = this.headers.filter(([k]) => k !== key);
    this.headers.push([key, String(value)]);
    return this;
  }

  defaultHeader(name, value) {
    if (!this.headers.some(([k]) => k === name)) this.headers.push([name, value]);
  }

  get streamed() {
    return !(this.body instanceof Uint8Array);
  }

  /** The body as byte pieces, in order. */
  async *pieces() {
    if (!this.streamed) {
      yield this.body;
      return;
    }
    for await (const piece of this.body) {
      yield typeof piece === 'string' ? encoder.encode(piece) : new Uint8Array(piece);
    }
  }

  /** Headers as sent, with content-length for a body known in full. */
  wireHeaders() {
    const headers = this.headers.slice();
    if (!this.streamed && !headers.some(([k]) => k === 'content-length')) headers.push(['content-length', String(this.body.length)]);
    return headers.map(([k, v]) => [k, encoder.encode(v)]);
  }
}

export function errorResponse(status, message) {
  return Response.json({ error: message }, { status });
}

/** What a route returned, as a Response: a Response as is; text or bytes
 * with 200; undefined or null as 204; an (async) iterable streamed; other
 * values as JSON. */
export function toResponse(value) {
  if (value instanceof Response) return value;
  if (value === undefined || value === null) return new Response(new Uint8Array(0), { status: 204 });
  if (typeof value === 'string' || value instanceof Uint8Array || value instanceof ArrayBuffer) return new Response(value);
  if (isIterable(value) && !Array.isArray(value)) return new Response(value, { headers: { 'content-type': 'application/octet-stream' } });
  return Response.json(value);
}

function compile(pattern) {
  if (!pattern.startsWith('/')) throw new TypeError(`route pattern ${JSON.stringify(pattern)} must start with /`);
  return pattern.split('/').filter((s) => s !== '');
}

function matchPath(segments, path) {
  const parts = path.split('/').filter((s) => s !== '');
  const params = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    if (seg.startsWith('*')) {
      params[seg.slice(1)] = parts.slice(i).map(decodeComponent).join('/');
      return params;
    }
    if (i >= parts.length) return null;
    if (seg.startsWith(':')) params[seg.slice(1)] = decodeComponent(parts[i]);
    else if (seg !== parts[i]) return null;
  }
  return parts.length === segments.length ? params : null;
}

/** Routes by method and path pattern (`:name` one segment, `*name` the
 * rest). A path no route fits answers 404, one that fits only other methods
 * 405, both as `{"error": ...}`; a throw answers 500 with `Name: message`
 * (its stack goes to `log`), an HTTPError its own status. */
export class Router {
  constructor() {
    this.routes = [];
    this.log = null;
  }

  route(method, pattern, fn) {
    if (typeof fn !== 'function') throw new TypeError(`the route ${method} ${pattern} needs a function`);
    this.routes.push([method.toUpperCase(), compile(pattern), fn]);
    return this;
  }

  get(pattern, fn) { return this.route('GET', pattern, fn); }
  post(pattern, fn) { return this.route('POST', pattern, fn); }
  put(pattern, fn) { return this.route('PUT', pattern, fn); }
  delete(pattern, fn) { return this.route('DELETE', pattern, fn); }

  async handle(request) {
    const allowed = [];
    for (const [method, segments, fn] of this.routes) {
      const params = matchPath(segments, request.path);
      if (params === null) continue;
      if (method !== '*' && method !== request.method) {
        allowed.push(method);
        continue;
      }
      request.params = params;
      try {
        return toResponse(await fn(request));
      } catch (error) {
        if (error instanceof HTTPError) return errorResponse(error.status, error.message);
        if (this.log !== null && error instanceof Error && error.stack) this.log(`${describeError(error)}\n${error.stack}`);
        return errorResponse(500, describeError(error));
      }
    }
    if (allowed.length > 0) {
      return errorResponse(405, `${request.path} takes ${allowed.join(', ')}, not ${request.method}`).setHeader('allow', allowed.join(', '));
    }
    return errorResponse(404, `no route ${request.method} ${request.path}`);
  }
}
