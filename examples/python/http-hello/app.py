"""`http-hello`: an HTTP handler (load-balancing endpoint) in Python, the
same routes as the Rust and JavaScript ones: a health check, a greeting,
the request body streamed back, a streamed answer, and a host tensor op.
Build: guest-sdk/python/build.sh examples/python/http-hello out.wasm --world http-handler
"""

import os
import time

import wasmpod_sdk as wasmpod
from wasmpod_sdk import http

app = http.Router()


@app.get("/ping")
def ping(request):
    return "ok"


@app.get("/hello/{name}")
def hello(request):
    version = os.environ.get("VERSION")
    suffix = f" (version {version})" if version else ""
    return f"hello, {request.params['name']}{suffix} from python"


@app.post("/echo")
def echo(request):
    # The pieces go back as they arrive: the body is never held in full.
    content_type = request.headers.get("content-type", "application/octet-stream")
    return http.Response(request.chunks(), content_type=content_type)


@app.get("/stream")
def stream(request):
    try:
        n = int(request.query_param("n", "5"))
        ms = int(request.query_param("ms", "100"))
    except ValueError:
        raise http.HTTPError(400, "n and ms must be whole numbers") from None

    def lines():
        for i in range(n):
            if i:
                time.sleep(ms / 1000)
            yield f"chunk {i}\n"

    return http.Response(lines(), content_type="text/plain")


@app.post("/matmul")
def matmul(request):
    body = request.json()
    a, b = body["a"], body["b"]
    ta = wasmpod.Tensor.from_f32([len(a), len(a[0])], [x for row in a for x in row])
    tb = wasmpod.Tensor.from_f32([len(b), len(b[0])], [x for row in b for x in row])
    product = ta.matmul(tb)
    rows, cols = product.shape
    values = product.to_f32()
    return {"product": [values[i * cols : (i + 1) * cols] for i in range(rows)], "shape": [rows, cols]}


@app.get("/sleep/{ms}")
def sleep(request):
    ms = int(request.params["ms"])
    time.sleep(ms / 1000)
    return f"slept {ms} ms"


@app.get("/crash")
def crash(request):
    raise RuntimeError("crash requested")


http.serve(app)
