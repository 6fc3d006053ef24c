"""Small helpers that turn bad input into clear errors naming the argument.

Every public entry point of segblocks validates what it receives with these, so a wrong shape or
dtype surfaces as ``ValueError: <name>: expected ..., got ...`` instead of an obscure failure deep
inside a block.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "check_bool_flags",
    "check_dtype",
    "check_finite",
    "check_images",
    "check_ndim",
    "check_positive_int",
    "check_shape",
    "check_size",
    "check_tensor",
    "check_vocabulary",
]


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


def check_vocabulary(name: str, value: object) -> list[str]:
    """Return a class vocabulary as a list of names, refusing what would silently lose a class.

    A vocabulary is a sequence of non-empty strings with no name repeated (a repeated name makes
    one class unreachable). A bare string is refused: it would become one class per letter.

    Raises:
        TypeError: ``value`` is a string or not a sequence of strings.
        ValueError: empty, an empty (or blank) name, or a repeated name (after stripping spaces).
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a list of class names, got the single string {value!r}")
    if not isinstance(value, Sequence):
        raise TypeError(f"{name}: expected a list of class names, got {type(value).__name__}")
    names = list(value)
    if not names:
        raise ValueError(f"{name}: expected at least one class name, got none")
    for i, n in enumerate(names):
        if not isinstance(n, str):
            raise TypeError(f"{name}[{i}]: expected a class name (str), got {type(n).__name__}")
        if not n.strip():
            raise ValueError(f"{name}: expected non-empty class names, got {n!r} at position {i}")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        key = n.strip()
        if key in seen:
            raise ValueError(f"{name}: class name {key!r} appears twice (positions {seen[key]} and {i})")
        seen[key] = i
    return names


def check_bool_flags(name: str, value: object, length: int | None = None) -> list[bool]:
    """Return per-class flags as Python bools; only real bools (or numpy bools) are accepted.

    Strings such as ``"false"`` and numbers are refused, since ``bool("false")`` is True.

    Raises:
        TypeError: ``value`` is not a sequence of bools.
        ValueError: ``length`` is given and differs.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray | Tensor):
        raise TypeError(f"{name}: expected a list of bools, got {type(value).__name__}")
    if isinstance(value, Tensor | np.ndarray):
        if value.dtype not in (torch.bool, np.bool_):
            raise TypeError(f"{name}: expected bool flags, got dtype {value.dtype}")
        flags = [bool(v) for v in value.tolist()]
    else:
        flags = []
        for i, v in enumerate(value):
            if not isinstance(v, bool | np.bool_):
                raise TypeError(f"{name}[{i}]: expected True or False, got {v!r}")
            flags.append(bool(v))
    if length is not None and len(flags) != length:
        raise ValueError(f"{name}: expected {length} flags (one per class), got {len(flags)}")
    return flags


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer (not a bool, not a float) ``>= minimum``.

    Raises:
        TypeError: not an integer.
        ValueError: below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {int(value)}")
    return int(value)


def check_unit_grid(name: str, values: Sequence[float], what: str) -> list[float]:
    """Return a non-empty grid of numbers in ``[0, 1]`` (thresholds, exponents) as floats.

    Raises:
        ValueError: an empty grid, or a value that is not a number in ``[0, 1]``.
    """
    if not values:
        raise ValueError(f"{name}: expected at least one {what}, got none")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"{name}: expected {what}s in [0, 1], got {bad}")
    return [float(v) for v in values]


def check_size(name: str, value: object) -> tuple[int, int]:
    """Return a requested ``(H, W)`` output size; both sides must be positive ints.

    Raises:
        TypeError: not a pair of ints.
        ValueError: a side is zero or negative.
    """
    if not isinstance(value, Sequence | Tensor) or isinstance(value, str) or len(value) != 2:
        raise TypeError(f"{name}: expected (height, width), got {value!r}")
    h, w = (v.item() if isinstance(v, Tensor) else v for v in value)
    return check_positive_int(f"{name}[0]", h), check_positive_int(f"{name}[1]", w)


def check_finite(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` if a floating tensor holds NaN or infinity."""
    check_tensor(name, value)
    if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")


def check_images(
    name: str, value: object, *, ndim: int = 4, layout: str = "[B, 3, H, W]", check_values: bool = True
) -> Tensor:
    """Validate RGB images in ``[0, 1]`` (the library's image contract) and return them as float32.

    float16 / bfloat16 / float64 images are cast to float32 (the blocks compute in float32 and
    use autocast for lower precision); uint8 images and values outside ``[0, 1]`` (e.g. 0..255)
    are refused, as are NaN and infinity.

    Args:
        name: the argument name used in messages.
        value: ``[B, 3, H, W]`` (or ``layout`` with ``ndim`` dims, channels at ``-3``).
        ndim: the expected number of dimensions.
        layout: the dimension names.
        check_values: also check the values (finite, in ``[0, 1]``); on a GPU this costs one host
            sync, so hot training paths may skip it.

    Raises:
        TypeError: not a tensor, or not a floating dtype.
        ValueError: wrong shape, not 3 channels, non-finite values or values outside ``[0, 1]``.
    """
    images = check_tensor(name, value)
    check_ndim(name, images, ndim, layout)
    if images.shape[-3] != 3:
        raise ValueError(f"{name}: expected 3 (RGB) channels {layout}, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        hint = " (divide uint8 images by 255)" if images.dtype == torch.uint8 else ""
        raise TypeError(f"{name}: expected a floating dtype with values in [0, 1]{hint}, got {images.dtype}")
    if images.dtype != torch.float32:
        images = images.float()
    if check_values and images.numel():
        check_finite(name, images)
        lo, hi = float(images.detach().min()), float(images.detach().max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name}: expected RGB values in [0, 1], got {lo:g}..{hi:g}"
                + (" (0..255 images must be divided by 255)" if hi > 1.0 else "")
            )
    return images
