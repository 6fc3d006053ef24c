"""Pickle-free serialisation of nested training state: tensors to safetensors, the rest to JSON.

Optimizer, scheduler, scaler and RNG states are nested dicts, lists and tuples of numbers, strings
and tensors. :func:`encode_state` replaces every tensor (and NumPy array) by a reference to an entry
of a flat ``{key: tensor}`` dict and tags what JSON cannot express (tuples, non-string dict keys);
:func:`decode_state` reverses it exactly. Nothing is ever unpickled, so a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["decode_state", "encode_state", "fsync_dir", "sha256_file", "untie", "write_json"]

_TENSOR, _NDARRAY, _TUPLE, _ITEMS = "__tensor__", "__ndarray__", "__tuple__", "__items__"


def _fresh_key(key: str, tensors: dict[str, Tensor]) -> str:
    # Paths are unique unless a dict key itself contains "/"; disambiguate rather than overwrite.
    candidate, n = key, 0
    while candidate in tensors:
        n += 1
        candidate = f"{key}#{n}"
    return candidate


def encode_state(value: Any, tensors: dict[str, Tensor], path: str = "") -> Any:
    """Return a JSON-compatible copy of ``value``; its tensors are moved into ``tensors``.

    Args:
        value: Nested dicts/lists/tuples of None, bool, int, float, str, tensors and NumPy arrays.
        tensors: Receives ``{path: tensor}`` for every tensor (detached, contiguous, on CPU).
        path: Key prefix naming where ``value`` sits (used for tensor keys and error messages).

    Returns:
        The JSON-compatible structure.

    Raises:
        TypeError: If ``value`` holds an object of any other type (the message names its path).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        key = _fresh_key(path or "tensor", tensors)
        tensors[key] = value.detach().to("cpu").contiguous()  # no copy for contiguous CPU tensors
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        key = _fresh_key(path or "array", tensors)
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {_NDARRAY: key}
    if isinstance(value, np.generic):
        return encode_state(value.item(), tensors, path)
    if isinstance(value, tuple):
        return {_TUPLE: [encode_state(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_state(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        plain = all(isinstance(k, str) and not k.startswith("__") for k in value)
        if plain:
            return {k: encode_state(v, tensors, f"{path}/{k}") for k, v in value.items()}
        items = []
        for k, v in value.items():
            if not (k is None or isinstance(k, (bool, int, float, str))):
                raise TypeError(f"{path or '<root>'}: dict key of unsupported type {type(k).__name__}")
            items.append([k, encode_state(v, tensors, f"{path}/{k}")])
        return {_ITEMS: items}
    raise TypeError(
        f"{path or '<root>'}: cannot store a {type(value).__name__} in a checkpoint "
        "(expected numbers, strings, tensors, arrays, lists, tuples or dicts)"
    )


def decode_state(value: Any, tensors: dict[str, Tensor]) -> Any:
    """Rebuild the structure encoded by :func:`encode_state`.

    Args:
        value: The JSON-compatible structure.
        tensors: The ``{key: tensor}`` dict written beside it.

    Returns:
        The original nested value (tensors on CPU).

    Raises:
        ValueError: If a referenced tensor is missing from ``tensors``.
    """
    if isinstance(value, list):
        return [decode_state(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, payload),) = value.items()
        if tag in (_TENSOR, _NDARRAY):
            if payload not in tensors:
                raise ValueError(f"tensor {payload!r} referenced by the metadata is missing")
            return tensors[payload] if tag == _TENSOR else tensors[payload].numpy()
        if tag == _TUPLE:
            return tuple(decode_state(v, tensors) for v in payload)
        if tag == _ITEMS:
            return {k: decode_state(v, tensors) for k, v in payload}
    return {k: decode_state(v, tensors) for k, v in value.items()}


def untie(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Copy tensors that share memory with an earlier one (tied weights), which safetensors refuses.

    Args:
        tensors: ``{key: tensor}`` on CPU.

    Returns:
        The same dict with a private copy for every tensor whose storage was already seen.
    """
    seen: set[int] = set()
    out = {}
    for key, tensor in tensors.items():
        storage = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        out[key] = tensor.clone() if storage in seen else tensor
        if storage != -1:
            seen.add(storage)
    return out


def sha256_file(path: Path, *, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks.

    Args:
        path: the file.
        chunk_bytes: bytes read at a time.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON and flush it to disk (``fsync``) before returning.

    Args:
        path: the file to write.
        value: anything ``json.dump`` accepts.
    """
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, allow_nan=True)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (after a rename) to disk where the platform allows it.

    Args:
        path: the directory.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
