"""What the worker is pinned to: its devices and its tensor-memory quota."""

from dataclasses import dataclass
from typing import Optional

from wit_world.imports import device as _wit


@dataclass(frozen=True)
class DeviceInfo:
    """One device of the worker's slice; `index` is what
    `Tensor.to_device` takes. `kind` is "cpu" or "cuda"."""

    index: int
    kind: str
    name: str
    uuid: str
    mig_profile: Optional[str]
    memory_bytes: int


def devices():
    """The devices of the worker's slice: one, or several for a GPU group."""
    return [
        DeviceInfo(d.index, d.kind.name.lower(), d.name, d.uuid, d.mig_profile, d.memory_bytes)
        for d in _wit.devices()
    ]


def quota_bytes():
    """This worker's tensor-memory quota, in bytes."""
    return _wit.quota_bytes()


def used_bytes():
    """Bytes of the quota held by this worker's tensors right now."""
    return _wit.used_bytes()
