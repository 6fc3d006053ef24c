"""Prompt simulation: points, boxes, scribbles, polygons, coarse masks, and the click simulator.

All functions take ``[H, W]`` bool numpy masks and a ``numpy.random.Generator`` and return pixel
coordinates ``(x, y)`` (pixel centres are at ``+0.5``; clicks are integer pixel indices).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from segblocks.data.shapes.geometry import fill_polygon, stroke_mask
from segblocks.metrics.clicks import BoolMap, Click, centremost, first_click, next_click
from segblocks.metrics.clicks import check_bool_map as _check_mask
from segblocks.metrics.clicks import check_nonempty as _check_nonempty

__all__ = [
    "Click",
    "coarse_mask",
    "first_click",
    "jitter_box",
    "next_click",
    "sample_point",
    "sample_polygon",
    "sample_scribble",
]


def sample_point(mask: BoolMap, rng: np.random.Generator, *, mode: str = "random") -> tuple[int, int]:
    """A point inside ``mask``.

    Args:
        mask: ``[H, W]`` bool, not empty.
        rng: random generator (used by ``mode="random"``).
        mode: ``"random"`` (uniform over the mask) or ``"center"`` (the centre-most pixel, at the
            distance-transform maximum).

    Returns:
        ``(x, y)`` pixel indices.
    """
    _check_nonempty("mask", _check_mask("mask", mask))
    if mode == "center":
        return centremost(mask)
    if mode != "random":
        raise ValueError(f"mode: expected 'random' or 'center', got {mode!r}")
    ys, xs = np.nonzero(mask)
    i = int(rng.integers(len(xs)))
    return int(xs[i]), int(ys[i])


def jitter_box(
    mask: BoolMap, rng: np.random.Generator, *, jitter: float = 0.1
) -> tuple[float, float, float, float]:
    """The tight box of ``mask`` with each side moved by up to ``jitter`` x the box size.

    Args:
        mask: ``[H, W]`` bool, not empty.
        rng: random generator.
        jitter: largest move of a side, as a fraction of the box's width or height.

    Returns:
        ``(x1, y1, x2, y2)`` in pixel edges, clipped to the image, at least one pixel wide and high.
    """
    _check_nonempty("mask", _check_mask("mask", mask))
    if jitter < 0:
        raise ValueError(f"jitter: expected >= 0, got {jitter}")
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    bw, bh = x2 - x1, y2 - y1
    dx1, dx2 = rng.uniform(-jitter, jitter, size=2) * bw
    dy1, dy2 = rng.uniform(-jitter, jitter, size=2) * bh
    nx1, nx2 = sorted((float(np.clip(x1 + dx1, 0, w)), float(np.clip(x2 + dx2, 0, w))))
    ny1, ny2 = sorted((float(np.clip(y1 + dy1, 0, h)), float(np.clip(y2 + dy2, 0, h))))
    return nx1, ny1, max(nx2, nx1 + 1.0), max(ny2, ny1 + 1.0)


def sample_scribble(
    mask: BoolMap,
    rng: np.random.Generator,
    *,
    num_points: tuple[int, int] = (2, 5),
    width: tuple[float, float] = (2.5, 6.0),
) -> tuple[NDArray[np.float64], BoolMap]:
    """A scribble: a polyline through random in-mask points, drawn with a round pen, cut to the mask.

    Args:
        mask: ``[H, W]`` bool, not empty.
        rng: random generator.
        num_points: ``(min, max)`` points of the polyline.
        width: ``(min, max)`` pen width in pixels.

    Returns:
        ``(points [L, 2] (x, y) pixel centres, [H, W] bool stroke mask inside ``mask``)``; the stroke
        mask is never empty.
    """
    _check_nonempty("mask", _check_mask("mask", mask))
    ys, xs = np.nonzero(mask)
    n = int(rng.integers(num_points[0], num_points[1] + 1))
    idx = rng.choice(len(xs), size=min(n, len(xs)), replace=False)
    points = np.stack([xs[idx] + 0.5, ys[idx] + 0.5], axis=1).astype(np.float64)
    stroke = stroke_mask(points, float(rng.uniform(*width)), mask.shape) & mask
    if not stroke.any():  # a pen narrower than a pixel centre gap: keep the seed pixels themselves
        stroke[ys[idx], xs[idx]] = True
    return points, stroke


def sample_polygon(
    mask: BoolMap, rng: np.random.Generator, *, num_vertices: tuple[int, int] = (3, 9)
) -> tuple[NDArray[np.float64], BoolMap]:
    """A polygon through random in-mask points ordered by angle around their mean (a star-shaped,
    non-self-intersecting outline), filled; like SEEM's polygon prompts it is not clipped to the mask.

    Args:
        mask: ``[H, W]`` bool, not empty.
        rng: random generator.
        num_vertices: ``(min >= 3, max)`` vertices.

    Returns:
        ``(vertices [V, 2] (x, y), [H, W] bool filled polygon)``.
    """
    _check_nonempty("mask", _check_mask("mask", mask))
    lo, hi = num_vertices
    if lo < 3 or hi < lo:
        raise ValueError(f"num_vertices: expected (min >= 3, max >= min), got {num_vertices}")
    ys, xs = np.nonzero(mask)
    n = int(rng.integers(lo, hi + 1))
    idx = rng.choice(len(xs), size=n, replace=len(xs) < n)
    pts = np.stack([xs[idx] + 0.5, ys[idx] + 0.5], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    order = np.argsort(np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0]))
    vertices = pts[order]
    filled = fill_polygon(vertices, mask.shape)
    filled[ys[idx], xs[idx]] = True  # degenerate (collinear) polygons still cover their vertices
    return vertices, filled


def coarse_mask(mask: BoolMap, rng: np.random.Generator, *, max_iterations: int = 3) -> BoolMap:
    """A mask prompt: the mask randomly dilated or eroded (never eroded to nothing).

    Args:
        mask: ``[H, W]`` bool, not empty.
        rng: random generator.
        max_iterations: largest dilation/erosion in pixels.
    """
    _check_nonempty("mask", _check_mask("mask", mask))
    steps = int(rng.integers(0, max_iterations + 1))
    if steps == 0:
        return mask.copy()
    if rng.random() < 0.5:
        return ndimage.binary_dilation(mask, iterations=steps)
    eroded = ndimage.binary_erosion(mask, iterations=steps)
    return eroded if eroded.any() else mask.copy()
