"""Unit tests of the HTTP handler glue (routes, requests, responses) on a
plain CPython: python3 -m unittest discover -s guest-sdk/python/tests"""

import importlib.util
import json
import os
import unittest


def _load(name):
    path = os.path.join(os.path.dirname(__file__), "..", "wasmpod_sdk", name + ".py")
    spec = importlib.util.spec_from_file_location("wasmpod_sdk_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


glue = _load("_http_glue")


def request(method, path, body=b"", headers=()):
    data = [body]

    def read(_size):
        return data.pop() if data else b""

    return glue.Request(method, path, list(headers), read)


def body_of(response):
    return b"".join(response.pieces())


class RouterTest(unittest.TestCase):
    def setUp(self):
        self.app = glue.Router()
        self.logged = []
        self.app.log = self.logged.append

        @self.app.get("/hello/{name}")
        def hello(req):
            return f"hello, {req.params['name']}"

        @self.app.get("/files/{rest:path}")
        def files(req):
            return {"rest": req.params["rest"], "q": req.query_param("q")}

        @self.app.post("/echo")
        def echo(req):
            return glue.Response(req.chunks())

        @self.app.get("/boom")
        def boom(req):
            raise KeyError("missing")

        @self.app.get("/teapot")
        def teapot(req):
            raise glue.HTTPError(418, "short and stout")

    def test_params_text_and_json(self):
        r = self.app.handle(request("GET", "/hello/ada%20l"))
        self.assertEqual((r.status, body_of(r)), (200, b"hello, ada l"))
        r = self.app.handle(request("get", "/files/a/b.txt?q=1"))
        self.assertEqual(json.loads(body_of(r)), {"rest": "a/b.txt", "q": "1"})
        self.assertIn(("content-length", str(len(body_of(r))).encode()), r.wire_headers())

    def test_streamed_body_has_no_length(self):
        r = self.app.handle(request("POST", "/echo", b"abc"))
        self.assertTrue(r.streamed)
        self.assertEqual(body_of(r), b"abc")
        self.assertFalse(any(k == "content-length" for k, _ in r.wire_headers()))

    def test_unknown_path_and_wrong_method(self):
        r = self.app.handle(request("GET", "/nope"))
        self.assertEqual((r.status, json.loads(body_of(r))), (404, {"error": "no route GET /nope"}))
        r = self.app.handle(request("GET", "/echo"))
        self.assertEqual(r.status, 405)
        self.assertIn(("allow", "POST"), r.headers)

    def test_exceptions_become_answers(self):
        r = self.app.handle(request("GET", "/boom"))
        self.assertEqual((r.status, json.loads(body_of(r))), (500, {"error": "KeyError: 'missing'"}))
        self.assertIn("Traceback", self.logged[0])
        r = self.app.handle(request("GET", "/teapot"))
        self.assertEqual((r.status, json.loads(body_of(r))), (418, {"error": "short and stout"}))

    def test_return_values(self):
        self.assertEqual(glue.to_response(None).status, 204)
        self.assertEqual(glue.to_response(b"x").headers, [("content-type", "application/octet-stream")])
        self.assertEqual(body_of(glue.to_response(iter(["a", b"b"]))), b"ab")
        with self.assertRaises(TypeError):
            glue.to_response(object())

    def test_request_body_json_errors_are_400(self):
        req = request("POST", "/x", b"{not json")
        with self.assertRaises(glue.HTTPError) as caught:
            req.json()
        self.assertEqual(caught.exception.status, 400)
        self.assertEqual(request("POST", "/x", b"{}", [("Content-Type", "a/b")]).headers["content-type"], "a/b")


if __name__ == "__main__":
    unittest.main()
