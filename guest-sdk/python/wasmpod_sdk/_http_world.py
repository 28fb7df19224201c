"""The exports of world wasmpod:serverless/http-handler (`init` and
wasi:http/incoming-handler), over the registered app. The entry module that
`build.sh --world http-handler` generates re-exports `WitWorld` and
`IncomingHandler` from here, which is where componentize-py looks for them.
"""

import wit_world
from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import log as _log
from wit_world.imports import streams, types

from ._glue import REGISTRY, HandlerFailure
from ._http_glue import Request, error_response


def _method(method):
    if isinstance(method, types.Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def _log_error(text):
    _log.log(_log.Level.ERROR, text)


def _write_all(stream, data):
    """Write `data` as fast as the host takes it, then wait until it is sent."""
    view = memoryview(data)
    while view:
        room = stream.check_write()
        if room == 0:
            with stream.subscribe() as ready:
                ready.block()
            continue
        stream.write(bytes(view[:room]))
        view = view[room:]
    stream.blocking_flush()


class _Body:
    """The request body's stream, read on demand, dropped with the request."""

    def __init__(self, request):
        self.body = None
        self.stream = None
        self.request = request

    def read(self, size):
        if self.request is not None:
            self.body = self.request.consume()
            self.stream = self.body.stream()
            self.request = None
        if self.stream is None:
            return b""
        try:
            return self.stream.blocking_read(size)
        except Err as err:
            if isinstance(err.value, streams.StreamError_Closed):
                return b""
            raise OSError(f"reading the request body: {err.value}") from None

    def close(self):
        # The stream is the body's child: drop it first.
        for resource in (self.stream, self.body):
            if resource is not None:
                resource.__exit__(None, None, None)
        self.stream = self.body = None


def _send(response, response_out):
    try:
        fields = types.Fields.from_list(response.wire_headers())
    except Err as err:
        message = f"the handler's response headers are not valid: {err.value}"
        types.ResponseOutparam.set(response_out, Err(types.ErrorCode_InternalError(message)))
        return
    outgoing = types.OutgoingResponse(fields)
    try:
        outgoing.set_status_code(response.status)
    except Err:
        message = f"the handler's status {response.status} is not an HTTP status"
        types.ResponseOutparam.set(response_out, Err(types.ErrorCode_InternalError(message)))
        return
    body = outgoing.body()
    types.ResponseOutparam.set(response_out, Ok(outgoing))
    stream = body.write()
    try:
        for piece in response.pieces():
            if piece:
                _write_all(stream, piece)
    except Err:
        # The client went away: drop the body unfinished (cut off).
        stream.__exit__(None, None, None)
        return
    except BaseException as exc:  # noqa: B036 - a streaming route failed midway
        _log_error(f"streaming the response failed: {type(exc).__name__}: {exc}")
        stream.__exit__(None, None, None)
        return
    stream.__exit__(None, None, None)
    types.OutgoingBody.finish(body, None)


class WitWorld(wit_world.WitWorld):
    def init(self) -> None:
        try:
            REGISTRY.run_init()
        except HandlerFailure as failure:
            if failure.details:
                _log_error(failure.details.rstrip())
            raise Err(failure.message) from None


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request, response_out) -> None:
        app = REGISTRY.app
        body = _Body(request)
        try:
            req = Request(
                _method(request.method()),
                request.path_with_query() or "/",
                [(k, v.decode("latin-1")) for k, v in request.headers().entries()],
                body.read,
            )
            if app is None:
                response = error_response(500, "no HTTP app is registered")
            else:
                app.log = _log_error
                response = app.handle(req)
            _send(response, response_out)
        finally:
            body.close()
