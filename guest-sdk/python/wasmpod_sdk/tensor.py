"""`Tensor`: an immutable n-dimensional array on the worker's device (GPU or
CPU), with the host's ops as methods and operators. Every op returns a new
tensor; a failure raises `TensorError`.
"""

from enum import Enum

from componentize_py_types import Err
from wit_world.imports import tensor as _wit

from . import _convert
from .errors import TensorError

_ERROR_KINDS = {
    _wit.TensorError_ShapeMismatch: "shape-mismatch",
    _wit.TensorError_DtypeMismatch: "dtype-mismatch",
    _wit.TensorError_InvalidArgument: "invalid-argument",
    _wit.TensorError_QuotaExceeded: "quota-exceeded",
    _wit.TensorError_DeviceFault: "device-fault",
}


def tensor_error(value):
    """The SDK exception for a WIT `tensor-error` value."""
    return TensorError(_ERROR_KINDS.get(type(value), "unknown"), value.value)


class DType(str, Enum):
    """Element type. Plain strings ("f32", "i64", ...) are accepted wherever
    a DType is."""

    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    I32 = "i32"
    I64 = "i64"
    U8 = "u8"

    def __str__(self):
        return self.value

    @classmethod
    def of(cls, value):
        try:
            return value if isinstance(value, cls) else cls(value)
        except ValueError:
            names = ", ".join(d.value for d in cls)
            raise ValueError(f"unknown dtype {value!r}; expected one of {names}") from None

    def _to_wit(self):
        return _wit.Dtype[self.name]

    @classmethod
    def _from_wit(cls, value):
        return cls[value.name]

    @property
    def is_float(self):
        return self in (DType.F32, DType.F16, DType.BF16)


def _call(op, *args):
    try:
        return op(*args)
    except Err as err:
        raise tensor_error(err.value) from None


def _wrap(raw):
    tensor = Tensor.__new__(Tensor)
    tensor._raw = raw
    return tensor


def _operand(value, what="rhs"):
    if isinstance(value, Tensor):
        return value._raw
    raise TypeError(f"{what} must be a Tensor, got {type(value).__name__}")


class Tensor:
    """A tensor on the worker's device. Build one with `Tensor.from_list`,
    `from_f32`, `from_i64`, `from_bytes` or `zeros`, or get one from
    `Model.weight`. Python operators map to host ops: `a @ b` (matmul),
    `a + b`, `a - b`, `a * b`, `a / b` (broadcasting), and with a number on
    either side `+ - * /` become `scale`.
    """

    __slots__ = ("_raw",)

    def __init__(self, *_args, **_kwargs):
        raise TypeError("use Tensor.from_list, from_f32, from_i64, from_bytes or zeros")

    # -- construction ------------------------------------------------------

    @staticmethod
    def from_f32(shape, data):
        """Upload f32 values (a flat sequence of numbers) with `shape`."""
        return Tensor.from_bytes(DType.F32, shape, _convert.f32_bytes(data))

    @staticmethod
    def from_i64(shape, data):
        """Upload i64 values (a flat sequence of integers), e.g. token ids."""
        return Tensor.from_bytes(DType.I64, shape, _convert.i64_bytes(data))

    @staticmethod
    def from_bytes(dtype, shape, data):
        """Upload little-endian row-major bytes of `dtype`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        dims = _convert.shape(shape)
        return _wrap(_call(_wit.Tensor.from_bytes, DType.of(dtype)._to_wit(), dims, bytes(data)))

    @staticmethod
    def from_list(values, dtype=DType.F32):
        """Upload a number or a (nested) list of numbers; the shape is the
        nesting. `dtype` is "f32" (default) or "i64"; other dtypes come from
        a cast."""
        dtype = DType.of(dtype)
        dims, flat = _convert.flatten(values)
        if dtype is DType.F32:
            return Tensor.from_f32(dims, flat)
        if dtype is DType.I64:
            return Tensor.from_i64(dims, flat)
        return Tensor.from_f32(dims, flat).cast(dtype)

    @staticmethod
    def zeros(dtype, shape):
        """A tensor of zeros."""
        return _wrap(_call(_wit.Tensor.zeros, DType.of(dtype)._to_wit(), _convert.shape(shape)))

    @staticmethod
    def concat(tensors, axis=0):
        """Concatenate tensors of one dtype along `axis`."""
        raws = [_operand(t, f"tensors[{i}]") for i, t in enumerate(tensors)]
        return _wrap(_call(_wit.Tensor.concat, raws, _convert.s32(axis, "axis")))

    # -- facts -------------------------------------------------------------

    @property
    def shape(self):
        """The dimensions as a tuple, outermost first; `()` for a scalar."""
        return tuple(self._raw.shape())

    @property
    def dtype(self):
        return DType._from_wit(self._raw.dtype())

    @property
    def ndim(self):
        return len(self._raw.shape())

    @property
    def device_index(self):
        """Index of the device, within the worker's slice, holding it."""
        return self._raw.device_index()

    def __repr__(self):
        return f"Tensor(shape={list(self.shape)}, dtype={self.dtype.value})"

    # -- reading back ------------------------------------------------------

    def to_bytes(self):
        """Little-endian row-major bytes."""
        return _call(self._raw.to_bytes)

    def to_f32(self):
        """Flat list of floats (any dtype, converted)."""
        if self.dtype is DType.F32:
            # Bytes cross the boundary as one copy; a list<f32> is lifted
            # element by element.
            return _convert.f32_list(self.to_bytes())
        return list(_call(self._raw.to_f32))

    def to_i64(self):
        """Flat list of ints (integer dtypes only)."""
        return list(_call(self._raw.to_i64))

    def to_list(self):
        """Nested lists shaped like the tensor: ints for integer dtypes,
        floats otherwise; a plain number for a scalar."""
        flat = self.to_f32() if self.dtype.is_float else self.to_i64()
        return _convert.unflatten(flat, list(self.shape))

    def item(self):
        """The value of a one-element tensor."""
        flat = self.to_f32() if self.dtype.is_float else self.to_i64()
        if len(flat) != 1:
            raise ValueError(f"item() needs a tensor of one element, this one has shape {list(self.shape)}")
        return flat[0]

    def to_device(self, index):
        """Copy to device `index` of the worker's slice."""
        return _wrap(_call(self._raw.to_device, _convert.u32(index, "index")))

    # -- ops ---------------------------------------------------------------

    def matmul(self, rhs):
        """Matrix product over the last two axes; batch axes broadcast."""
        return _wrap(_call(self._raw.matmul, _operand(rhs)))

    def add(self, rhs):
        return _wrap(_call(self._raw.add, _operand(rhs)))

    def sub(self, rhs):
        return _wrap(_call(self._raw.sub, _operand(rhs)))

    def mul(self, rhs):
        return _wrap(_call(self._raw.mul, _operand(rhs)))

    def div(self, rhs):
        return _wrap(_call(self._raw.div, _operand(rhs)))

    def scale(self, factor, offset=0.0):
        """`self * factor + offset`, elementwise."""
        return _wrap(_call(self._raw.scale, _convert.f32(factor, "factor"), _convert.f32(offset, "offset")))

    def relu(self):
        return _wrap(_call(self._raw.relu))

    def gelu(self):
        return _wrap(_call(self._raw.gelu))

    def silu(self):
        return _wrap(_call(self._raw.silu))

    def tanh(self):
        return _wrap(_call(self._raw.tanh))

    def softmax(self, axis=-1):
        return _wrap(_call(self._raw.softmax, _convert.s32(axis, "axis")))

    def layer_norm(self, weight=None, bias=None, eps=1e-5):
        """Layer normalisation over the last axis."""
        w = None if weight is None else _operand(weight, "weight")
        b = None if bias is None else _operand(bias, "bias")
        return _wrap(_call(self._raw.layer_norm, w, b, _convert.f32(eps, "eps")))

    def rms_norm(self, weight=None, eps=1e-6):
        """RMS normalisation over the last axis."""
        w = None if weight is None else _operand(weight, "weight")
        return _wrap(_call(self._raw.rms_norm, w, _convert.f32(eps, "eps")))

    def gather(self, indices):
        """Embedding lookup: `self` is a table `[rows, dim]`."""
        return _wrap(_call(self._raw.gather, _operand(indices, "indices")))

    def reshape(self, *shape):
        """Same data, new shape; one dimension may be -1. Takes sizes or one
        list: `t.reshape(2, -1)` or `t.reshape([2, -1])`."""
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = shape[0]
        dims = [_convert.s64(d, f"shape[{i}]") for i, d in enumerate(shape)]
        return _wrap(_call(self._raw.reshape, dims))

    def permute(self, *dims):
        """Reorder axes: result axis i is input axis `dims[i]`."""
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = dims[0]
        return _wrap(_call(self._raw.permute, _convert.shape(dims, "dims")))

    def transpose(self, axis0=-2, axis1=-1):
        """Swap two axes (by default the last two)."""
        return _wrap(_call(self._raw.transpose, _convert.s32(axis0, "axis0"), _convert.s32(axis1, "axis1")))

    @property
    def T(self):  # noqa: N802 - NumPy's name
        """The last two axes swapped."""
        return self.transpose(-2, -1)

    def slice(self, axis, start, end):
        """Elements `start..end` (end exclusive) along `axis`."""
        return _wrap(_call(self._raw.slice, _convert.s32(axis, "axis"), _convert.u32(start, "start"), _convert.u32(end, "end")))

    def sum(self, axis=-1, keep_dim=False):
        return _wrap(_call(self._raw.sum, _convert.s32(axis, "axis"), bool(keep_dim)))

    def mean(self, axis=-1, keep_dim=False):
        return _wrap(_call(self._raw.mean, _convert.s32(axis, "axis"), bool(keep_dim)))

    def max(self, axis=-1, keep_dim=False):
        return _wrap(_call(self._raw.max, _convert.s32(axis, "axis"), bool(keep_dim)))

    def cast(self, dtype):
        return _wrap(_call(self._raw.cast, DType.of(dtype)._to_wit()))

    def argmax(self, axis=-1):
        """Index of the maximum along `axis`, as i64, axis removed."""
        return _wrap(_call(self._raw.argmax, _convert.s32(axis, "axis")))

    def top_k(self, k):
        """The `k` largest values along the last axis and their indices."""
        values, indices = _call(self._raw.top_k, _convert.u32(k, "k"))
        return _wrap(values), _wrap(indices)

    # -- operators ---------------------------------------------------------

    def __matmul__(self, rhs):
        return self.matmul(rhs)

    def __add__(self, rhs):
        return self.add(rhs) if isinstance(rhs, Tensor) else self._scalar(rhs, 1.0, rhs, "+")

    def __radd__(self, lhs):
        return self._scalar(lhs, 1.0, lhs, "+")

    def __sub__(self, rhs):
        return self.sub(rhs) if isinstance(rhs, Tensor) else self._scalar(rhs, 1.0, -_number(rhs, "-"), "-")

    def __rsub__(self, lhs):
        return self._scalar(lhs, -1.0, lhs, "-")

    def __mul__(self, rhs):
        return self.mul(rhs) if isinstance(rhs, Tensor) else self._scalar(rhs, rhs, 0.0, "*")

    def __rmul__(self, lhs):
        return self._scalar(lhs, lhs, 0.0, "*")

    def __truediv__(self, rhs):
        if isinstance(rhs, Tensor):
            return self.div(rhs)
        if _number(rhs, "/") == 0:
            raise ZeroDivisionError("tensor divided by the number zero")
        return self._scalar(rhs, 1.0 / rhs, 0.0, "/")

    def __neg__(self):
        return self.scale(-1.0, 0.0)

    def _scalar(self, operand, factor, offset, symbol):
        _number(operand, symbol)
        return self.scale(factor, offset)


def _number(value, symbol):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"unsupported operand for {symbol}: Tensor and {type(value).__name__}")
    return value
