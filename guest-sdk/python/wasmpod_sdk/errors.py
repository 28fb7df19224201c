"""Exceptions raised by the SDK. The host reports failures as WIT error
values; the SDK turns each into one of these, so a handler can catch them, or
let them fail the job with `Type: message`.
"""


class WasmpodError(Exception):
    """Base class of every error the SDK raises for a host-reported failure."""


class TensorError(WasmpodError):
    """A tensor op failed. `kind` is the WIT case: "shape-mismatch",
    "dtype-mismatch", "invalid-argument", "quota-exceeded" or "device-fault";
    the message starts with it in words, then the host's explanation."""

    def __init__(self, kind, detail):
        super().__init__(f"{kind.replace('-', ' ')}: {detail}")
        self.kind = kind
        self.detail = detail


class ModelError(WasmpodError):
    """A model call failed. `kind` is "not-found", "invalid" or "tensor"
    (loading the weight failed; `tensor_error` then holds the TensorError)."""

    def __init__(self, kind, detail, tensor_error=None):
        prefix = {"not-found": "not found", "invalid": "invalid model"}.get(kind)
        super().__init__(f"{prefix}: {detail}" if prefix else str(detail))
        self.kind = kind
        self.detail = detail
        self.tensor_error = tensor_error


class JobError(WasmpodError):
    """A progress update or a streamed chunk was not delivered: the value is
    not JSON-serializable, or the host refused it."""
