// The exports of world wasmpod:serverless/http-handler: `init` and
// wasi:http/incoming-handler (`incomingHandler`), over the registered
// Router. The entry module build.sh generates for --world http-handler
// re-exports these.

import { OutgoingBody, OutgoingResponse, Fields, ResponseOutparam } from 'wasi:http/types@0.2.12';
import { HandlerFailure, REGISTRY, describeError } from './glue.js';
import { Request, errorResponse } from './http-glue.js';
import { log } from './log.js';
import { beginJobScope } from './tensor.js';

const DISPOSE = Symbol.dispose || Symbol.for('dispose');

function drop(resource) {
  if (resource != null && typeof resource[DISPOSE] === 'function') resource[DISPOSE]();
}

function isClosed(error) {
  return error?.payload?.tag === 'closed';
}

/** Write `data` as fast as the host takes it, then wait until it is sent. */
function writeAll(stream, data) {
  let at = 0;
  while (at < data.length) {
    const room = Number(stream.checkWrite());
    if (room === 0) {
      const ready = stream.subscribe();
      ready.block();
      drop(ready);
      continue;
    }
    const n = Math.min(room, data.length - at);
    stream.write(data.subarray(at, at + n));
    at += n;
  }
  stream.blockingFlush();
}

function methodName(method) {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

async function send(response, responseOut) {
  let fields;
  try {
    fields = Fields.fromList(response.wireHeaders());
  } catch (error) {
    ResponseOutparam.set(responseOut, { tag: 'err', val: { tag: 'internal-error', val: `the handler's response headers are not valid: ${describeError(error)}` } });
    return;
  }
  const outgoing = new OutgoingResponse(fields);
  try {
    outgoing.setStatusCode(response.status);
  } catch {
    ResponseOutparam.set(responseOut, { tag: 'err', val: { tag: 'internal-error', val: `the handler's status ${response.status} is not an HTTP status` } });
    return;
  }
  const body = outgoing.body();
  ResponseOutparam.set(responseOut, { tag: 'ok', val: outgoing });
  const stream = body.write();
  try {
    for await (const piece of response.pieces()) {
      if (piece.length > 0) writeAll(stream, piece);
    }
  } catch (error) {
    // The client went away or the streaming route failed: drop the body
    // unfinished, which tells the host the response is cut off.
    if (!isClosed(error)) log(`streaming the response failed: ${describeError(error)}`, 'error');
    drop(stream);
    return;
  }
  drop(stream);
  OutgoingBody.finish(body, undefined);
}

export async function init() {
  try {
    await REGISTRY.runInit();
    return { tag: 'ok', val: undefined };
  } catch (error) {
    const failure = error instanceof HandlerFailure ? error : new HandlerFailure(describeError(error));
    if (failure.details) log(failure.details.trimEnd(), 'error');
    return { tag: 'err', val: failure.message };
  }
}

export const incomingHandler = {
  async handle(request, responseOut) {
    const endScope = beginJobScope();
    let body = null;
    let stream = null;
    const readChunk = (size) => {
      if (body === null) {
        body = request.consume();
        stream = body.stream();
      }
      try {
        return stream.blockingRead(BigInt(size));
      } catch (error) {
        if (isClosed(error)) return new Uint8Array(0);
        throw error;
      }
    };
    try {
      const req = new Request(methodName(request.method()), request.pathWithQuery() ?? '/', request.headers().entries().map(([k, v]) => [k, new TextDecoder('latin1').decode(v)]), readChunk);
      const app = REGISTRY.app;
      let response;
      if (app === null) response = errorResponse(500, 'no HTTP app is registered');
      else {
        app.log = (text) => log(text, 'error');
        response = await app.handle(req);
      }
      await send(response, responseOut);
    } finally {
      // The stream is the body's child: drop it first.
      drop(stream);
      drop(body);
      endScope();
    }
  },
};
