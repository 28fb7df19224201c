"""The pure part of HTTP handlers: routes and their path patterns, the
request and response objects, and turning whatever a route returns (or
raises) into a response. No WIT imports, so it is tested on a plain CPython;
`_http_world` connects it to wasi:http.
"""

import json
import re
import traceback
from urllib.parse import parse_qs, unquote


class HTTPError(Exception):
    """Raise from a route to answer `status` with `{"error": message}`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = str(message)


class Headers:
    """Request headers: case-insensitive, first value by `get`, all by
    `get_all`; values are text (latin-1 for non-text bytes)."""

    def __init__(self, pairs):
        self._pairs = [(k.lower(), v) for k, v in pairs]

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self._pairs:
            if k == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self._pairs if k == name]

    def items(self):
        return list(self._pairs)

    def __contains__(self, name):
        return self.get(name) is not None

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value


class Request:
    """One HTTP request: `method`, `path` (after `/lb/{endpoint}`), `query`
    (dict of lists), `headers`, the route's `params`, and the body, read on
    demand: `body()` whole, `json()`, `text()`, or `chunks()` as it
    arrives."""

    def __init__(self, method, path_with_query, headers, read_chunk):
        self.method = method.upper()
        path, _, query = path_with_query.partition("?")
        self.path = path or "/"
        self.query_string = query
        self.query = parse_qs(query, keep_blank_values=True)
        self.headers = Headers(headers)
        self.params = {}
        self._read_chunk = read_chunk
        self._body = None
        self._streamed = False

    def query_param(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def chunks(self, size=65536):
        """The body in pieces as they arrive (once; then `body()` is empty)."""
        if self._body is not None:
            yield self._body
            return
        self._streamed = True
        while True:
            chunk = self._read_chunk(size)
            if not chunk:
                return
            yield chunk

    def body(self):
        if self._body is None:
            self._body = b"" if self._streamed else b"".join(self.chunks())
        return self._body

    def text(self):
        try:
            return self.body().decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(400, "the request body is not UTF-8 text") from None

    def json(self):
        try:
            return json.loads(self.body())
        except ValueError as exc:
            raise HTTPError(400, f"the request body is not valid JSON: {exc}") from None


class Response:
    """A response: `body` is bytes, text, or any iterable of them (streamed:
    each piece is sent as it is produced); `headers` a dict or pairs."""

    def __init__(self, body=b"", status=200, headers=None, content_type=None):
        self.status = int(status)
        pairs = headers.items() if isinstance(headers, dict) else (headers or [])
        self.headers = [(str(k).lower(), str(v)) for k, v in pairs]
        if content_type is not None:
            self.set_header("content-type", content_type)
        if isinstance(body, str):
            body = body.encode("utf-8")
            self.default_header("content-type", "text/plain; charset=utf-8")
        elif isinstance(body, (bytes, bytearray, memoryview)):
            body = bytes(body)
            self.default_header("content-type", "application/octet-stream")
        self.body = body

    def set_header(self, name, value):
        name = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k != name]
        self.headers.append((name, str(value)))

    def default_header(self, name, value):
        if not any(k == name for k, _ in self.headers):
            self.headers.append((name, value))

    @property
    def streamed(self):
        return not isinstance(self.body, bytes)

    def pieces(self):
        """The body as bytes pieces, in order."""
        if not self.streamed:
            yield self.body
            return
        for piece in self.body:
            if isinstance(piece, str):
                piece = piece.encode("utf-8")
            yield bytes(piece)

    def wire_headers(self):
        """Headers as sent: with content-length for a body known in full."""
        headers = list(self.headers)
        if not self.streamed and not any(k == "content-length" for k, _ in headers):
            headers.append(("content-length", str(len(self.body))))
        return [(k, v.encode("latin-1", "replace")) for k, v in headers]


def json_response(value, status=200):
    body = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return Response(body, status=status, content_type="application/json")


def error_response(status, message):
    return json_response({"error": message}, status=status)


def to_response(value):
    """What a route returned, as a Response: a Response as is; text or
    bytes with 200; a dict or list as JSON; None as 204; any other iterable
    streamed."""
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(status=204)
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return Response(value)
    if isinstance(value, (dict, list, int, float, bool)):
        return json_response(value)
    if hasattr(value, "__iter__"):
        return Response(value, content_type="application/octet-stream")
    raise TypeError(
        f"a route returned {type(value).__name__}; return a Response, text, bytes, "
        "a dict or list (JSON), None (204) or an iterable of pieces"
    )


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def compile_pattern(pattern):
    """`/users/{id}/files/{rest:path}` to a regex with named groups."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with /")
    out, at = "", 0
    for m in _PARAM.finditer(pattern):
        out += re.escape(pattern[at : m.start()])
        out += f"(?P<{m.group(1)}>.*)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"
        at = m.end()
    out += re.escape(pattern[at:])
    return re.compile(out.rstrip("/") + "/?\\Z" if out != "/" else "/\\Z")


class Router:
    """Routes by method and path pattern (`{name}` one segment,
    `{name:path}` the rest). A path no route fits answers 404, one that fits
    only other methods 405, both as `{"error": ...}`; an exception in a
    route answers 500 with `Type: message` (its traceback goes to the log),
    an `HTTPError` its own status."""

    def __init__(self):
        self.routes = []
        self.log = None

    def route(self, method, pattern):
        regex = compile_pattern(pattern)

        def register(function):
            if not callable(function):
                raise TypeError(f"the route {method} {pattern} needs a function")
            self.routes.append((method.upper(), regex, function))
            return function

        return register

    def get(self, pattern):
        return self.route("GET", pattern)

    def post(self, pattern):
        return self.route("POST", pattern)

    def put(self, pattern):
        return self.route("PUT", pattern)

    def delete(self, pattern):
        return self.route("DELETE", pattern)

    def handle(self, request):
        allowed = []
        for method, regex, function in self.routes:
            m = regex.match(request.path)
            if m is None:
                continue
            if method not in ("*", request.method):
                allowed.append(method)
                continue
            request.params = {k: unquote(v) for k, v in m.groupdict().items()}
            try:
                return to_response(function(request))
            except HTTPError as exc:
                return error_response(exc.status, exc.message)
            except BaseException as exc:  # noqa: B036 - SystemExit too must not trap
                if self.log is not None:
                    self.log("".join(traceback.format_exception(exc)).rstrip())
                text = str(exc)
                name = type(exc).__name__
                return error_response(500, f"{name}: {text}" if text else name)
        if allowed:
            response = error_response(
                405, f"{request.path} takes {', '.join(allowed)}, not {request.method}"
            )
            response.set_header("allow", ", ".join(allowed))
            return response
        return error_response(404, f"no route {request.method} {request.path}")
