"""`Model`: safetensors weights and auxiliary files (tokenizer, config) from
the endpoint's model store. Weights are loaded once per device by the host
and shared read-only; opening a model again is cheap.
"""

import json
from dataclasses import dataclass

from componentize_py_types import Err
from wit_world.imports import model as _wit

from .errors import ModelError
from .tensor import DType, _wrap, tensor_error


def _model_error(value):
    if isinstance(value, _wit.ModelError_NotFound):
        return ModelError("not-found", value.value)
    if isinstance(value, _wit.ModelError_Invalid):
        return ModelError("invalid", value.value)
    cause = tensor_error(value.value)
    return ModelError("tensor", str(cause), tensor_error=cause)


def _call(op, *args):
    try:
        return op(*args)
    except Err as err:
        raise _model_error(err.value) from None


def _text(value, what):
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class WeightInfo:
    """Name, dtype and shape of one weight."""

    name: str
    dtype: DType
    shape: tuple


def list_models():
    """Names of the models available to this endpoint."""
    return list(_wit.list_models())


class Model:
    """An opened model. Open models in your `init` function and keep the
    weights you need; opening at import time would run while the component is
    being built, where no models exist."""

    __slots__ = ("_raw",)

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use Model.open(name)")

    @staticmethod
    def open(name):
        """Open the model called `name` in the endpoint's model directory."""
        model = Model.__new__(Model)
        model._raw = _call(_wit.Model.open, _text(name, "name"))
        return model

    @staticmethod
    def list():
        """Names of the models available to this endpoint."""
        return list_models()

    @property
    def name(self):
        return self._raw.name()

    def weights(self):
        """Every weight, sorted by name, as WeightInfo."""
        return [WeightInfo(w.name, DType._from_wit(w.dtype), tuple(w.shape)) for w in self._raw.weights()]

    def weight(self, name):
        """One weight as a read-only Tensor on the worker's device."""
        return _wrap(_call(self._raw.weight, _text(name, "name")))

    def files(self):
        """Auxiliary (non-safetensors) files, relative to the model dir."""
        return list(self._raw.files())

    def read_file(self, path):
        """The bytes of an auxiliary file."""
        return bytes(_call(self._raw.read_file, _text(path, "path")))

    def read_text(self, path):
        """An auxiliary file decoded as UTF-8."""
        data = self.read_file(path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelError("invalid", f"{path} is not UTF-8: {exc}") from None

    def read_json(self, path):
        """An auxiliary file parsed as JSON (e.g. "config.json")."""
        text = self.read_text(path)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ModelError("invalid", f"{path} is not valid JSON: {exc}") from None

    def __repr__(self):
        return f"Model({self.name!r})"
