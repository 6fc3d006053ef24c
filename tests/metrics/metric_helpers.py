"""Random inputs shared by the metric tests (imported as a sibling module by pytest)."""

from __future__ import annotations

import numpy as np
import torch

from segblocks.structures import PanopticResult, SegmentInfo

# Categories of the random panoptic maps: ids 0-2 things, 3-4 stuff.
CATEGORIES = {0: True, 1: True, 2: True, 3: False, 4: False}


def random_panoptic(
    rng: np.random.Generator, h: int, w: int, *, void: bool, max_rects: int = 7
) -> tuple[np.ndarray, dict[int, int]]:
    """A segment map painted with random rectangles; at most one segment per stuff category.

    Args:
        rng: random generator.
        h: height.
        w: width.
        void: leave unpainted pixels VOID (0); otherwise a stuff background covers the image.
        max_rects: most rectangles painted.

    Returns:
        ``(map [H, W] int64, {segment_id: category_id})`` with only segments that own pixels.
    """
    seg = np.zeros((h, w), np.int64)
    cats: dict[int, int] = {}
    stuff_ids: dict[int, int] = {}
    next_id = int(rng.integers(1, 50))
    if not void:
        c = int(rng.integers(3, 5))
        cats[next_id], stuff_ids[c] = c, next_id
        seg[:] = next_id
        next_id += int(rng.integers(1, 4))
    for _ in range(int(rng.integers(1, max_rects + 1))):
        c = int(rng.integers(0, 5))
        if CATEGORIES[c]:
            sid = next_id
            next_id += int(rng.integers(1, 4))
            cats[sid] = c
        else:
            if c not in stuff_ids:
                stuff_ids[c] = next_id
                cats[next_id] = c
                next_id += int(rng.integers(1, 4))
            sid = stuff_ids[c]
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        seg[y0 : y0 + int(rng.integers(1, h)), x0 : x0 + int(rng.integers(1, w))] = sid
    present = set(np.unique(seg).tolist())
    return seg, {k: v for k, v in cats.items() if k in present}


def perturb(
    rng: np.random.Generator, seg: np.ndarray, cats: dict[int, int]
) -> tuple[np.ndarray, dict[int, int]]:
    """A prediction close to ``seg``: shifted, with a few repainted rectangles, and no VOID pixel."""
    out = np.roll(seg, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1)).copy()
    new_cats = dict(cats)
    stuff_of = {c: s for s, c in cats.items() if not CATEGORIES[c]}
    bg_cat = 3 if 3 in stuff_of or 4 not in stuff_of else 4
    bg = stuff_of.get(bg_cat, max(cats, default=0) + 100)
    new_cats[bg] = bg_cat
    out[out == 0] = bg
    h, w = seg.shape
    for _ in range(int(rng.integers(0, 3))):
        sid = max(new_cats) + 1
        c = int(rng.integers(0, 3))  # things only, so stuff stays one segment per category
        new_cats[sid] = c
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        out[y0 : y0 + int(rng.integers(1, h // 2 + 2)), x0 : x0 + int(rng.integers(1, w // 2 + 2))] = sid
    present = set(np.unique(out).tolist())
    return out, {k: v for k, v in new_cats.items() if k in present}


def panoptic_result(
    seg: np.ndarray, cats: dict[int, int], categories: dict[int, bool] = CATEGORIES
) -> PanopticResult:
    """Wrap a map and its ``{id: category}`` into a :class:`PanopticResult`."""
    return PanopticResult(
        segment_map=torch.from_numpy(seg.astype(np.int64)),
        segments=[
            SegmentInfo(id=int(k), category_id=int(v), is_thing=categories[v]) for k, v in cats.items()
        ],
    )


def to_torchmetrics(seg: np.ndarray, cats: dict[int, int], void_category: int = 99) -> torch.Tensor:
    """``[1, H, W, 2]`` (category, instance) pairs as torchmetrics' PanopticQuality expects."""
    out = np.zeros((*seg.shape, 2), np.int64)
    out[..., 0] = void_category
    for sid, c in cats.items():
        m = seg == sid
        out[m, 0] = c
        out[m, 1] = sid
    return torch.from_numpy(out)[None]
