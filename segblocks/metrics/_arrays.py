"""Array helpers shared by the metrics: tensors or numpy arrays in, validated numpy arrays out."""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["check_array", "to_numpy"]


def to_numpy(name: str, value: object) -> np.ndarray:
    """Return ``value`` (a tensor on any device, or a numpy array) as a numpy array.

    Raises:
        TypeError: ``value`` is neither a tensor nor a numpy array.
    """
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def check_array(name: str, value: np.ndarray, ndim: int, layout: str, kind: str) -> None:
    """Raise a clear error unless ``value`` has ``ndim`` dims and a dtype of ``kind``.

    Args:
        name: the argument name used in the message.
        value: the array to check.
        ndim: the expected number of dimensions.
        layout: the dimension names, e.g. ``"[H, W]"``.
        kind: ``"bool"``, ``"integer"`` (bool excluded), ``"integer_or_bool"`` or ``"number"``.

    Raises:
        ValueError: wrong number of dimensions.
        TypeError: wrong dtype.
    """
    if value.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dims {layout}, got shape {tuple(value.shape)}")
    dt = value.dtype
    ok = {
        "bool": dt == np.bool_,
        "integer": np.issubdtype(dt, np.integer),
        "integer_or_bool": dt == np.bool_ or np.issubdtype(dt, np.integer),
        "number": dt == np.bool_ or np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating),
    }[kind]
    if not ok:
        wanted = {"integer_or_bool": "an integer or bool", "number": "a numeric"}.get(kind, f"a {kind}")
        raise TypeError(f"{name}: expected {wanted} dtype, got {dt}")
