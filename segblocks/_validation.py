"""Small helpers that turn bad input into clear errors naming the argument.

Every public entry point of segblocks validates what it receives with these, so a wrong shape or
dtype surfaces as ``ValueError: <name>: expected ..., got ...`` instead of an obscure failure deep
inside a block.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["check_dtype", "check_ndim", "check_shape", "check_tensor"]


def check_tensor(name: str, value: object) -> Tensor:
    """Return ``value`` if it is a tensor, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_ndim(name: str, value: Tensor, ndim: int, layout: str) -> None:
    """Raise ``ValueError`` unless ``value`` has ``ndim`` dimensions (``layout`` names them)."""
    check_tensor(name, value)
    if value.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dims {layout}, got shape {tuple(value.shape)}")


def check_shape(name: str, value: Tensor, shape: Sequence[int | None], layout: str) -> None:
    """Raise ``ValueError`` unless ``value`` matches ``shape`` (``None`` matches any size)."""
    check_ndim(name, value, len(shape), layout)
    for expected, got in zip(shape, value.shape):
        if expected is not None and expected != got:
            want = tuple("*" if s is None else s for s in shape)
            raise ValueError(f"{name}: expected shape {want} {layout}, got {tuple(value.shape)}")


_KINDS = {
    "floating": lambda d: d.is_floating_point,
    "integer": lambda d: not d.is_floating_point and not d.is_complex and d != torch.bool,
    "bool": lambda d: d == torch.bool,
}


def check_dtype(name: str, value: Tensor, kind: str) -> None:
    """Raise ``TypeError`` unless ``value``'s dtype is of ``kind`` ("floating", "integer", "bool")."""
    check_tensor(name, value)
    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {sorted(_KINDS)}, got {kind!r}")
    if not _KINDS[kind](value.dtype):
        article = "an" if kind == "integer" else "a"
        raise TypeError(f"{name}: expected {article} {kind} dtype, got {value.dtype}")
