"""Checks and conversions between Python values and the WIT's integer and
float lists, done before a host call so that a bad argument is a Python
exception naming it, never a trap in the bindings.
"""

import array
import sys

_U32_MAX = 2**32 - 1
_S32_MIN, _S32_MAX = -(2**31), 2**31 - 1
_S64_MIN, _S64_MAX = -(2**63), 2**63 - 1


def _int(value, what, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = value.__index__()
        else:
            raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be in {low}..={high}, got {value}")
    return value


def u32(value, what):
    return _int(value, what, 0, _U32_MAX)


def s32(value, what):
    return _int(value, what, _S32_MIN, _S32_MAX)


def s64(value, what):
    return _int(value, what, _S64_MIN, _S64_MAX)


def f32(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def shape(dims, what="shape"):
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
        raise TypeError(f"{what} must be a list of sizes, got {type(dims).__name__}")
    return [u32(d, f"{what}[{i}]") for i, d in enumerate(dims)]


def f32_bytes(values):
    """Little-endian f32 bytes of a flat sequence of numbers."""
    try:
        packed = array.array("f", values)
    except TypeError:
        # Name the offending element rather than array's generic complaint.
        for i, v in enumerate(values):
            f32(v, f"data[{i}]")
        raise
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def i64_bytes(values):
    """Little-endian i64 bytes of a flat sequence of integers."""
    checked = [s64(v, f"data[{i}]") for i, v in enumerate(values)]
    packed = array.array("q", checked)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def f32_list(data):
    packed = array.array("f")
    packed.frombytes(data)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tolist()


def flatten(nested):
    """Flatten a nested list of numbers into (shape, flat values); every row
    at one depth must have the same length."""
    if isinstance(nested, (int, float)) and not isinstance(nested, bool):
        return [], [nested]
    if not isinstance(nested, (list, tuple)):
        raise TypeError(f"expected a number or a (nested) list of numbers, got {type(nested).__name__}")
    dims = []
    level = nested
    while isinstance(level, (list, tuple)):
        dims.append(len(level))
        if not level:
            break
        level = level[0]
    flat = []

    def walk(value, depth, path):
        if depth == len(dims):
            if isinstance(value, (list, tuple)):
                raise ValueError(f"ragged nested list: {path} is a list, expected a number at depth {depth}")
            flat.append(value)
            return
        if not isinstance(value, (list, tuple)) or len(value) != dims[depth]:
            got = f"length {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
            raise ValueError(f"ragged nested list: {path} has {got}, expected length {dims[depth]}")
        for i, item in enumerate(value):
            walk(item, depth + 1, f"{path}[{i}]")

    walk(nested, 0, "value")
    return dims, flat


def unflatten(flat, dims):
    """Nest a flat list by `dims` (row-major)."""
    if not dims:
        return flat[0]
    if len(dims) == 1:
        return list(flat)
    step = 1
    for d in dims[1:]:
        step *= d
    return [unflatten(flat[i * step:(i + 1) * step], dims[1:]) for i in range(dims[0])]
