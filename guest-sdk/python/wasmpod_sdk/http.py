"""HTTP handlers (world http-handler, load-balancing endpoints): routes on a
`Router`, each a function from a `Request` to what it answers.

    import wasmpod_sdk as wasmpod
    from wasmpod_sdk import http

    app = http.Router()

    @app.get("/ping")
    def ping(request):
        return "ok"

    @app.get("/hello/{name}")
    def hello(request):
        return {"greeting": "hello, " + request.params["name"]}

    @app.post("/echo")
    def echo(request):
        return http.Response(request.chunks(), content_type="application/octet-stream")

    http.serve(app)

A route returns a `Response`, text, bytes, a dict or list (JSON), None
(204), or an iterable of pieces (streamed: each is sent as produced);
raising `HTTPError(status, message)` answers that status. `@wasmpod.init`
registers a per-instance setup as for queue handlers. Build the app with
`guest-sdk/python/build.sh APP_DIR OUT.wasm --world http-handler`.
"""

from ._glue import REGISTRY as _REGISTRY
from ._http_glue import Headers, HTTPError, Request, Response, Router, json_response


def serve(app, init=None):
    """Register `app` (a Router) to answer every request, and optionally
    `init` to run once per instance before the first one."""
    _REGISTRY.set_app(app)
    if init is not None:
        _REGISTRY.set_init(init)
    return app


__all__ = ["HTTPError", "Headers", "Request", "Response", "Router", "json_response", "serve"]
