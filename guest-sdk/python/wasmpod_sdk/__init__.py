"""The Python SDK for wasmpod handlers.

A handler is a function from a JSON value (the job's input) to a JSON-able
value (the job's output); raising fails the job with `Type: message`.

    import wasmpod_sdk as wasmpod

    @wasmpod.handler
    def handle(job_input):
        wasmpod.progress({"step": "greeting"})
        return {"greeting": "hello, " + job_input["name"]}

Register an optional per-instance setup with `@wasmpod.init` (open models
there, not at import time), or do both at once with
`wasmpod.serve(handle, init=setup)`. Build the app with
`guest-sdk/python/build.sh APP_DIR OUT.wasm`.

Beyond pure computation a handler reaches the host through this package:
`Tensor` (ops on the worker's device), `Model` (safetensors weights and
auxiliary files), the running job (`progress`, `stream`, `log`, `job_id`,
`cancelled`) and the device slice (`devices`, `quota_bytes`, `used_bytes`).
"""

from ._glue import REGISTRY as _REGISTRY
from .device import DeviceInfo, devices, quota_bytes, used_bytes
from .errors import JobError, ModelError, TensorError, WasmpodError
from .job import LogLevel, cancelled, debug, error, info, job_id, log, progress, stream, warn
from .model import Model, WeightInfo, list_models
from .tensor import DType, Tensor

__version__ = "0.1.0"


def handler(function):
    """Decorator: `function(input) -> output` handles every job."""
    return _REGISTRY.set_handler(function)


def init(function):
    """Decorator: `function()` runs once per instance before its first job;
    raising there fails the worker's start rather than a job."""
    return _REGISTRY.set_init(function)


def serve(handle, init=None):
    """Register `handle` (and optionally `init`) without decorators."""
    _REGISTRY.set_handler(handle)
    if init is not None:
        _REGISTRY.set_init(init)


__all__ = [
    "DType",
    "DeviceInfo",
    "JobError",
    "LogLevel",
    "Model",
    "ModelError",
    "Tensor",
    "TensorError",
    "WasmpodError",
    "WeightInfo",
    "cancelled",
    "debug",
    "devices",
    "error",
    "handler",
    "info",
    "init",
    "job_id",
    "list_models",
    "log",
    "progress",
    "quota_bytes",
    "serve",
    "stream",
    "used_bytes",
    "warn",
]
