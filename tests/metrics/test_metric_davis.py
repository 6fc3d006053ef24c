"""DAVIS J, F and J&F on hand-worked masks, invariances and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.metrics import DavisJF, boundary_f_measure, boundary_map, region_similarity


def test_region_similarity_by_hand() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert region_similarity(a, b) == 1.0  # both empty
    a[:2] = True  # 8 px
    b[1:3] = True  # 8 px, 4 shared
    assert region_similarity(a, b) == pytest.approx(4 / 12)
    void = np.zeros((4, 4), bool)
    void[2] = True  # removes 4 px of b only
    assert region_similarity(a, b, void) == pytest.approx(4 / 8)


def test_boundary_map_by_hand() -> None:
    m = np.zeros((4, 5), bool)
    m[1:3, 1:4] = True
    # A pixel is on the boundary when it differs from its right, lower or lower-right neighbour.
    expected = np.array(
        [
            [1, 1, 1, 1, 0],
            [1, 0, 0, 1, 0],
            [1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(boundary_map(m), expected)
    assert not boundary_map(np.ones((3, 3), bool)).any()  # the image border is no boundary


def test_boundary_f_by_hand() -> None:
    # 10x10: tolerance ceil(0.008 * 14.14) = 1 px. GT is the left half (boundary: column 4).
    gt = np.zeros((10, 10), bool)
    gt[:, :5] = True
    pred = np.zeros((10, 10), bool)
    pred[:5, :7] = True
    pred[5:, :5] = True
    # Pred boundary: rows 0-3 at col 6, row 4 at cols 4-6, rows 5-9 at col 4 (12 px); 7 of them lie
    # within 1 px of column 4, and 7 of the 10 GT boundary pixels (rows 3-9) lie within 1 px of it.
    p, r = 7 / 12, 7 / 10
    assert boundary_f_measure(pred, gt) == pytest.approx(2 * p * r / (p + r))
    shifted = np.zeros((10, 10), bool)
    shifted[:, :7] = True  # boundary 2 px away
    assert boundary_f_measure(shifted, gt) == 0.0
    assert boundary_f_measure(shifted, gt, bound_th=2) == 1.0  # a tolerance in pixels
    assert boundary_f_measure(np.zeros_like(gt), gt) == 0.0
    assert boundary_f_measure(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


def _video(rng: np.random.Generator, t: int, n_obj: int, s: int = 16) -> np.ndarray:
    ids = np.zeros((t, s, s), np.int64)
    for obj in range(1, n_obj + 1):
        for f in range(t):
            y, x = int(rng.integers(0, s - 4)), int(rng.integers(0, s - 4))
            ids[f, y : y + int(rng.integers(3, 8)), x : x + int(rng.integers(3, 8))] = obj
    return ids


def test_video_jf_by_hand() -> None:
    # 3 frames; the middle one is evaluated. Object 1: J = 4/12 (as above), F from the masks.
    gt = np.zeros((3, 4, 4), np.int64)
    pred = np.zeros((3, 4, 4), np.int64)
    gt[1, :2] = 1
    pred[1, 1:3] = 1
    metric = DavisJF()
    metric.update(pred, gt)
    res = metric.compute()
    f = boundary_f_measure(pred[1] == 1, gt[1] == 1)
    assert res.j_mean == pytest.approx(4 / 12) and res.f_mean == pytest.approx(f)
    assert res.jf == pytest.approx((4 / 12 + f) / 2) and res.num_objects == 1
    all_frames = DavisJF(skip_first_last=False)
    all_frames.update(pred, gt)
    # Frames 0 and 2 are empty in both: J = F = 1 there.
    assert all_frames.compute().j_mean == pytest.approx((1 + 4 / 12 + 1) / 3)


def test_decay_uses_the_davis_bins() -> None:
    # 8 evaluated frames; bins cut at round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7]: the first bin
    # holds frames 0-2, the last frames 5-7. The object is perfect in frames 0-2 and missed after.
    t = 10
    gt = np.zeros((t, 6, 6), np.int64)
    gt[:, 1:4, 1:4] = 1
    pred = gt.copy()
    pred[4:] = 0  # evaluated frames are 1..8: perfect in 1, 2, 3 (bin 0), missed in 4..8
    metric = DavisJF()
    metric.update(pred, gt)
    res = metric.compute()
    assert res.j_decay == pytest.approx(1.0 - 0.0)
    assert res.j_recall == pytest.approx(3 / 8) and res.j_mean == pytest.approx(3 / 8)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(3, 5), n_obj=st.integers(1, 3))
def test_jf_invariances(seed: int, t: int, n_obj: int) -> None:
    rng = np.random.default_rng(seed)
    gt = _video(rng, t, n_obj)
    present = all((gt[f] == o).any() for f in range(t) for o in range(1, n_obj + 1))
    perfect = DavisJF()
    perfect.update(gt, gt)
    assert perfect.compute().jf == 1.0
    if present:  # every object in every frame: an empty prediction scores 0
        empty = DavisJF()
        empty.update(np.zeros_like(gt), gt)
        assert empty.compute().jf == 0.0
    # Renaming object ids in both maps changes nothing.
    pred = _video(rng, t, n_obj)
    # DAVIS scores only objects of the target, in the frames it evaluates (first and last skipped).
    pred[~np.isin(pred, np.unique(gt[1:-1]))] = 0
    perm = np.concatenate([[0], rng.permutation(n_obj) + 1])
    a, b = DavisJF(), DavisJF()
    a.update(pred, gt)
    b.update(perm[pred], perm[gt])
    ra, rb = a.compute(), b.compute()
    assert ra.jf == pytest.approx(rb.jf) and ra.num_objects == rb.num_objects


def test_void_merge_and_errors() -> None:
    gt = np.zeros((3, 4, 4), np.int64)
    gt[:, :2] = 1
    gt[:, 3] = 255
    pred = gt.copy()
    pred[pred == 255] = 1  # predicting over void is not penalised
    metric = DavisJF()
    metric.update(pred, gt)
    assert metric.compute().jf == 1.0
    other = DavisJF()
    other.update(np.zeros_like(gt), np.where(gt == 255, 0, gt))
    assert metric.merge(other).compute().num_objects == 2
    assert math.isnan(DavisJF().compute().jf)
    with pytest.raises(ValueError, match="not objects of the target"):
        metric.update(np.full_like(gt, 2), gt)
    with pytest.raises(ValueError, match="shape"):
        metric.update(gt[:, :3], gt)
    with pytest.raises(TypeError, match="integer"):
        metric.update(gt.astype(float), gt)
    with pytest.raises(ValueError, match="3 frames"):
        metric.update(gt[:2], gt[:2])
    with pytest.raises(TypeError, match="bool"):
        region_similarity(gt[0], gt[0])
    with pytest.raises(ValueError, match="bound_th"):
        DavisJF(bound_th=0)
