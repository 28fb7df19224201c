"""The glue between the host's `handle`/`init` exports and the user's
functions: JSON in, the user's function, JSON out, and every failure turned
into one error string. Pure Python with no WIT imports, so it can be tested
with a plain CPython.
"""

import json
import traceback


class HandlerFailure(Exception):
    """A job (or `init`) failed; `message` is what the host reports and
    `details` the traceback worth logging, if any."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.message = message
        self.details = details


def describe_exception(exc):
    """`Type: message`, the way Python prints the last line of a traceback."""
    name = type(exc).__name__
    text = str(exc)
    return f"{name}: {text}" if text else name


def _failure(exc):
    details = "".join(traceback.format_exception(exc))
    return HandlerFailure(describe_exception(exc), details)


def decode_input(text):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise HandlerFailure(f"invalid input: {exc}") from None


def encode_json(value):
    """Strict JSON: NaN and infinities are rejected rather than written as
    the non-JSON tokens Python's json module would emit."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def encode_output(value):
    try:
        return encode_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise HandlerFailure(
            "the handler's output could not be serialized to JSON: "
            + describe_exception(exc)
        ) from None


class Registry:
    """The handler and init function an app registered at import time.

    componentize-py imports the app while building the component, so the
    registration is part of the component's initial snapshot."""

    def __init__(self):
        self.handle = None
        self.init = None
        # An HTTP handler's router (world http-handler) instead of `handle`.
        self.app = None

    def set_app(self, app):
        if not hasattr(app, "handle") or not callable(app.handle):
            raise TypeError(f"the HTTP app must be a wasmpod_sdk.http.Router, got {type(app).__name__}")
        if self.app is not None and self.app is not app:
            raise RuntimeError("an HTTP app is already registered; an app registers exactly one router")
        self.app = app
        return app

    def set_handler(self, function):
        _require_callable(function, "handler")
        if self.handle is not None and self.handle is not function:
            raise RuntimeError(
                f"a handler is already registered ({_name(self.handle)}); "
                f"an app registers exactly one, not also {_name(function)}"
            )
        self.handle = function
        return function

    def set_init(self, function):
        _require_callable(function, "init")
        if self.init is not None and self.init is not function:
            raise RuntimeError(
                f"an init function is already registered ({_name(self.init)}); "
                f"an app registers at most one, not also {_name(function)}"
            )
        self.init = function
        return function

    def run_init(self):
        """Run the registered init, if any. Raises HandlerFailure."""
        if self.init is None:
            return
        try:
            self.init()
        except BaseException as exc:  # noqa: B036 - SystemExit too must not trap
            raise _failure(exc) from None

    def run_handle(self, input_text):
        """Run the handler on one job's input JSON and return the output
        JSON. Raises HandlerFailure."""
        if self.handle is None:
            raise HandlerFailure(
                "no handler is registered: decorate a function with "
                "@wasmpod_sdk.handler or call wasmpod_sdk.serve(handle)"
            )
        value = decode_input(input_text)
        try:
            output = self.handle(value)
        except BaseException as exc:  # noqa: B036 - SystemExit too must not trap
            raise _failure(exc) from None
        return encode_output(output)


def _require_callable(function, role):
    if not callable(function):
        raise TypeError(f"the {role} must be callable, got {type(function).__name__}")


def _name(function):
    return getattr(function, "__qualname__", repr(function))


REGISTRY = Registry()
