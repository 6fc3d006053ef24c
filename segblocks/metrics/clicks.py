"""The click simulator of the interactive segmentation protocol (NoC, SEEM's training clicks).

The first click is positive, at the ground truth's centre-most pixel; every next click goes to the
centre of the larger error region -- positive inside the false negatives, negative inside the false
positives -- never on a pixel clicked before (SEEM / RITM rule). The NoC metric and the shapes world's
prompt sampler share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["Click", "centremost", "check_bool_map", "check_nonempty", "first_click", "next_click"]

BoolMap = NDArray[np.bool_]


def check_bool_map(name: str, mask: object) -> BoolMap:
    """Return ``mask`` if it is a ``[H, W]`` bool numpy array; raise a ValueError naming ``name`` otherwise."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.bool_:
        got = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"{name}: expected a [H, W] bool numpy array, got {got}")
    return mask


def check_nonempty(name: str, mask: BoolMap) -> None:
    """Raise a ValueError naming ``name`` when ``mask`` has no pixel set."""
    if not mask.any():
        raise ValueError(f"{name}: the mask is empty; no prompt can be drawn inside it")


@dataclass(frozen=True)
class Click:
    """One click at pixel ``(x, y)`` (column, row); ``positive`` adds, negative removes."""

    x: int
    y: int
    positive: bool


def centremost(region: BoolMap) -> tuple[int, int]:
    """The pixel farthest from the region's border (image borders count as border)."""
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def first_click(gt_mask: BoolMap) -> Click:
    """The first click of the interactive protocol: positive, at the mask's centre-most pixel.

    Args:
        gt_mask: ``[H, W]`` bool ground truth, not empty.
    """
    check_nonempty("gt_mask", check_bool_map("gt_mask", gt_mask))
    x, y = centremost(gt_mask)
    return Click(x, y, True)


def next_click(gt_mask: BoolMap, pred_mask: BoolMap, clicked: BoolMap | None = None) -> Click | None:
    """The next simulated click (SEEM / RITM rule).

    False negatives ``FN = gt & ~pred & ~clicked`` and false positives ``FP = ~gt & pred & ~clicked``;
    the click is positive if ``|FN| > |FP|``, negative otherwise, at the distance-transform maximum
    of that region, so it always lies inside the error region.

    Args:
        gt_mask: ``[H, W]`` bool ground truth.
        pred_mask: ``[H, W]`` bool current prediction.
        clicked: ``[H, W]`` bool pixels already clicked (excluded), or None.

    Returns:
        The click, or None when there is no error left.
    """
    gt = check_bool_map("gt_mask", gt_mask)
    pred = check_bool_map("pred_mask", pred_mask)
    if pred.shape != gt.shape:
        raise ValueError(f"pred_mask: shape {pred.shape} does not match gt_mask {gt.shape}")
    free = np.ones_like(gt) if clicked is None else ~check_bool_map("clicked", clicked)
    if free.shape != gt.shape:
        raise ValueError(f"clicked: shape {free.shape} does not match gt_mask {gt.shape}")
    fn = gt & ~pred & free
    fp = ~gt & pred & free
    n_fn, n_fp = int(fn.sum()), int(fp.sum())
    if n_fn == 0 and n_fp == 0:
        return None
    positive = n_fn > n_fp
    x, y = centremost(fn if positive else fp)
    return Click(x, y, positive)
