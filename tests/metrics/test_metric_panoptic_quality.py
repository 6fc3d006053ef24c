"""PanopticQuality: agreement with torchmetrics, COCO crowd / VOID rules by hand, invariances, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_helpers import CATEGORIES, panoptic_result, perturb, random_panoptic, to_torchmetrics
from torchmetrics.detection import PanopticQuality as PeerPQ

from segblocks.metrics import PanopticQuality
from segblocks.structures import PanopticResult, SegmentInfo

THINGS = {c for c, t in CATEGORIES.items() if t}
STUFF = {c for c, t in CATEGORIES.items() if not t}


Pair = tuple[tuple[np.ndarray, dict[int, int]], tuple[np.ndarray, dict[int, int]]]


def _random_pairs(seed: int, n: int) -> list[Pair]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        h, w = int(rng.integers(6, 24)), int(rng.integers(6, 24))
        gt = random_panoptic(rng, h, w, void=bool(rng.random() < 0.7))
        if rng.random() < 0.6:
            pred = perturb(rng, *gt)
        else:
            pred = random_panoptic(rng, h, w, void=False)
        pairs.append((pred, gt))
    return pairs


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6))
def test_matches_torchmetrics_on_random_maps(seed: int, n: int) -> None:
    ours = PanopticQuality(categories=CATEGORIES)
    peer_avg = PeerPQ(things=THINGS, stuffs=STUFF, return_sq_and_rq=True)
    peer_cls = PeerPQ(things=THINGS, stuffs=STUFF, return_sq_and_rq=True, return_per_class=True)
    for (pm, pc), (gm, gc) in _random_pairs(seed, n):
        ours.update(panoptic_result(pm, pc), panoptic_result(gm, gc))
        peer_avg.update(to_torchmetrics(pm, pc), to_torchmetrics(gm, gc))
        peer_cls.update(to_torchmetrics(pm, pc), to_torchmetrics(gm, gc))
    res = ours.compute()
    avg = peer_avg.compute().double()
    if res.all.n == 0:
        assert torch.isnan(avg).all()
        return
    np.testing.assert_allclose([res.all.pq, res.all.sq, res.all.rq], avg.numpy(), atol=1e-6)
    per = peer_cls.compute().double().numpy()  # [K, 3], categories in torchmetrics' order: things, stuff
    order = sorted(THINGS) + sorted(STUFF)
    ours_per = np.array([[res.per_class[c].pq, res.per_class[c].sq, res.per_class[c].rq] for c in order])
    np.testing.assert_allclose(ours_per, per, atol=1e-6)


def _square(
    h: int, w: int, rows: slice, cols: slice, value: int, base: np.ndarray | None = None
) -> np.ndarray:
    out = np.zeros((h, w), np.int64) if base is None else base.copy()
    out[rows, cols] = value
    return out


def _pq(pred: PanopticResult, gt: PanopticResult, crowd: tuple[int, ...] = ()) -> PanopticQuality:
    metric = PanopticQuality(categories=CATEGORIES)
    metric.update(pred, gt, target_crowd_ids=crowd)
    return metric


def test_void_ground_truth_is_left_out_of_the_union() -> None:
    # GT: segment 1 (thing 0) on rows 0-4 (50 px), VOID below. Pred covers rows 0-5: 10 px on VOID.
    gt = panoptic_result(_square(10, 10, slice(0, 5), slice(None), 1), {1: 0})
    pred = panoptic_result(_square(10, 10, slice(0, 6), slice(None), 7), {7: 0})
    s = _pq(pred, gt).compute().per_class[0]
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)
    assert s.iou == pytest.approx(50 / (60 + 50 - 50 - 10))


def test_prediction_mostly_in_void_is_not_a_false_positive() -> None:
    gt = panoptic_result(_square(10, 10, slice(0, 5), slice(None), 1), {1: 0})
    pred_map = _square(10, 10, slice(0, 5), slice(None), 7)
    pred_map[5:10, 0:6] = 8  # 30 px, all on VOID
    pred_map[5:10, 6:10] = 9  # 20 px, all on VOID
    pred_map[4, :] = 10  # a 10 px strip: 10/10 on the GT segment -> a real false positive
    pred = panoptic_result(pred_map, {7: 0, 8: 1, 9: 0, 10: 2})
    res = _pq(pred, gt).compute()
    assert res.per_class[0].tp == 1 and res.per_class[0].fp == 0  # 9 lies in VOID
    assert res.per_class[1].fp == 0  # 8 lies in VOID
    assert res.per_class[2].fp == 1
    assert res.per_class[0].iou == pytest.approx(40 / (40 + 50 - 40))


def test_crowd_regions_are_neither_matched_nor_missed_and_absorb_predictions() -> None:
    # GT: thing 0 (id 1) on the left half, a crowd of thing 0 (id 2) on the right half.
    gt_map = _square(10, 10, slice(None), slice(0, 5), 1)
    gt_map[:, 5:] = 2
    gt = panoptic_result(gt_map, {1: 0, 2: 0})
    # Pred: the left half exactly; the crowd exactly (same class: ignored); a class-1 blob on the crowd.
    pred_map = gt_map.copy() * 0
    pred_map[:, :5] = 11
    pred_map[:, 5:] = 12
    pred_map[0:2, 5:] = 13
    pred = panoptic_result(pred_map, {11: 0, 12: 0, 13: 1})
    res = _pq(pred, gt, crowd=(2,)).compute()
    assert (res.per_class[0].tp, res.per_class[0].fp, res.per_class[0].fn) == (1, 0, 0)
    assert res.per_class[1].fp == 1  # crowd of another category does not absorb it
    assert res.all.pq == pytest.approx((1.0 + 0.0) / 2)
    # Without the crowd flag, 12 matches segment 2 at IoU 40/50.
    res2 = _pq(pred, gt).compute()
    assert (res2.per_class[0].tp, res2.per_class[0].fn) == (2, 0)
    assert res2.per_class[0].iou == pytest.approx(1.0 + 0.8)


def test_predicted_void_does_not_shrink_the_union() -> None:
    # panopticapi: only ground-truth VOID leaves the union. GT segment 50 px, prediction covers 30 of
    # them and leaves the rest VOID: IoU 30/50 = 0.6, a match with SQ 0.6.
    gt = panoptic_result(_square(10, 10, slice(0, 5), slice(None), 1), {1: 0})
    pred = panoptic_result(_square(10, 10, slice(0, 3), slice(None), 4), {4: 0})
    res = _pq(pred, gt).compute()
    assert res.all.sq == pytest.approx(0.6) and res.all.rq == 1.0


def test_iou_of_exactly_one_half_is_not_a_match() -> None:
    gt = panoptic_result(_square(8, 10, slice(0, 4), slice(None), 1), {1: 0})  # 40 px
    pred_map = _square(8, 10, slice(0, 2), slice(None), 3)  # 20 px inside: IoU 0.5
    pred_map[4:, :] = 5
    pred = panoptic_result(pred_map, {3: 0, 5: 3})
    res = _pq(pred, gt).compute()
    c0 = res.per_class[0]
    assert (c0.tp, c0.fp, c0.fn) == (0, 1, 1)
    assert res.per_class[3].fp == 0  # 5 lies entirely on VOID
    assert res.all.pq == 0.0 and res.all.n == 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_relabelling_segment_ids_changes_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    (pm, pc), (gm, gc) = _random_pairs(seed, 1)[0]
    a, b = PanopticQuality(categories=CATEGORIES), PanopticQuality(categories=CATEGORIES)
    a.update(panoptic_result(pm, pc), panoptic_result(gm, gc))
    new_ids = rng.permutation(np.arange(1, 10_000))[: len(pc)]
    mapping = dict(zip(pc, new_ids.tolist()))
    pm2 = np.zeros_like(pm)
    for old, new in mapping.items():
        pm2[pm == old] = new
    b.update(panoptic_result(pm2, {mapping[k]: v for k, v in pc.items()}), panoptic_result(gm, gc))
    assert a.compute() == b.compute()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_ground_truth_as_prediction_is_perfect_and_empty_prediction_is_zero(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gm, gc = random_panoptic(rng, 12, 15, void=bool(rng.random() < 0.5))
    perfect = _pq(panoptic_result(gm, gc), panoptic_result(gm, gc)).compute()
    assert perfect.all.pq == 1.0 and perfect.all.n == len(set(gc.values()))
    empty = _pq(panoptic_result(np.zeros_like(gm), {}), panoptic_result(gm, gc)).compute()
    assert empty.all.pq == 0.0 and empty.all.rq == 0.0


def test_no_categories_seen_gives_nan() -> None:
    res = PanopticQuality(categories=CATEGORIES).compute()
    assert math.isnan(res.all.pq) and res.all.n == 0


def test_merge_equals_one_pass_and_rejects_other_settings() -> None:
    pairs = _random_pairs(3, 6)
    whole, left, right = (PanopticQuality(categories=CATEGORIES) for _ in range(3))
    for i, ((pm, pc), (gm, gc)) in enumerate(pairs):
        whole.update(panoptic_result(pm, pc), panoptic_result(gm, gc))
        (left if i % 2 else right).update(panoptic_result(pm, pc), panoptic_result(gm, gc))
    assert left.merge(right).compute() == whole.compute()
    with pytest.raises(ValueError, match="different settings"):
        left.merge(PanopticQuality(categories={0: True}))
    with pytest.raises(TypeError, match="PanopticQuality"):
        left.merge(object())  # type: ignore[arg-type]


def test_sync_in_a_one_process_group(tmp_path: object) -> None:
    import torch.distributed as dist

    pairs = _random_pairs(5, 2)
    metric = PanopticQuality(categories=CATEGORIES)
    for (pm, pc), (gm, gc) in pairs:
        metric.update(panoptic_result(pm, pc), panoptic_result(gm, gc))
    before = metric.compute()
    metric.sync()  # no process group: a no-op
    assert metric.compute() == before
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        metric.sync()
    finally:
        dist.destroy_process_group()
    assert metric.compute() == before


def _ok() -> tuple[PanopticResult, PanopticResult]:
    seg = _square(4, 4, slice(0, 2), slice(None), 1)
    return panoptic_result(seg, {1: 0}), panoptic_result(seg, {1: 0})


def test_clear_errors_on_bad_inputs() -> None:
    metric = PanopticQuality(categories=CATEGORIES)
    pred, gt = _ok()
    with pytest.raises(ValueError, match="shape"):
        metric.update(panoptic_result(np.ones((4, 5), np.int64), {1: 0}), gt)
    with pytest.raises(TypeError, match="PanopticResult"):
        metric.update(pred.segment_map, gt)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer"):
        metric.update(PanopticResult(torch.ones(4, 4), []), gt)
    with pytest.raises(ValueError, match="unknown category_id 9"):
        metric.update(PanopticResult(pred.segment_map, [SegmentInfo(1, 9, True)]), gt)
    with pytest.raises(ValueError, match="segment ids 1 appear in the map but have no segment info"):
        metric.update(PanopticResult(pred.segment_map, []), gt)
    with pytest.raises(ValueError, match="is_thing=False"):
        metric.update(PanopticResult(pred.segment_map, [SegmentInfo(1, 0, False)]), gt)
    with pytest.raises(ValueError, match="crowd ids"):
        metric.update(pred, gt, target_crowd_ids=[5])
    with pytest.raises(ValueError, match=">= 0"):
        metric.update(panoptic_result(-np.ones((4, 4), np.int64), {}), gt)
    with pytest.raises(ValueError, match="at least one category"):
        PanopticQuality(categories={})
    with pytest.raises(TypeError, match="ids must be ints"):
        PanopticQuality(categories={"cat": True})  # type: ignore[dict-item]
    assert metric.num_images == 0  # nothing was half-added
