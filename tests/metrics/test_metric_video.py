"""Video metrics: YouTube-VIS AP and VPQ on hand-worked cases, against image metrics, invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from coco_peer import CocoPeer
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_helpers import CATEGORIES, panoptic_result, perturb, random_panoptic

from segblocks.metrics import PanopticQuality, VideoAP, VideoInstances, VideoPanopticQuality
from segblocks.metrics._coco_engine import COCO_AREA_RANGES

# ---------------------------------------------------------------- YouTube-VIS AP


def _tubes(
    masks: list[np.ndarray], labels: list[int], scores: list[float] | None = None, size: int = 12
) -> VideoInstances:
    return VideoInstances(
        masks=torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, 3, size, size, dtype=torch.bool),
        labels=torch.tensor(labels, dtype=torch.long),
        scores=None if scores is None else torch.tensor(scores, dtype=torch.float64),
    )


def test_tube_iou_is_taken_over_the_whole_sequence() -> None:
    # GT: a 2x2 square in frames 0 and 1, absent in frame 2. The prediction is exact in frame 0 and
    # twice too large in frame 1: tube IoU = (4 + 4) / (4 + 8) = 2/3 (the mean of frame IoUs is 0.75).
    gt = np.zeros((3, 8, 8), bool)
    gt[0, :2, :2] = gt[1, :2, :2] = True
    pred = gt.copy()
    pred[1, :2, :4] = True
    metric = VideoAP(categories=[1])
    metric.update(_tubes([pred], [1], [0.9]), _tubes([gt], [1]))
    res = metric.compute()
    # Matched at IoU thresholds 0.50, 0.55, 0.60, 0.65: 4 of 10.
    assert res.ap == pytest.approx(0.4) and res.ap50 == pytest.approx(1.0) and res.ap75 == 0.0


def test_single_frame_video_ap_equals_cocoeval() -> None:
    # With one frame and COCO's area ranges, video AP reduces to image mask AP (no crowd).
    rng = np.random.default_rng(0)
    cats = [1, 2]
    metric, peer = VideoAP(categories=cats, area_ranges=COCO_AREA_RANGES), CocoPeer(cats)
    for vid in range(6):
        gms = [
            np.roll(_blob(rng, 50), int(rng.integers(0, 20)), axis=1) for _ in range(int(rng.integers(1, 4)))
        ]
        gls = [int(rng.choice(cats)) for _ in gms]
        dms = [np.roll(m, int(rng.integers(-3, 4)), axis=0) for m in gms] + [_blob(rng, 50)]
        dls = [*gls, int(rng.choice(cats))]
        dss = rng.random(len(dms)).tolist()
        metric.update(
            _tubes([m[None] for m in dms], dls, dss), _tubes([m[None] for m in gms], gls), video_id=vid
        )
        peer.add_image(vid, np.stack(gms), gls, [False] * len(gms), np.stack(dms), dls, dss)
    np.testing.assert_allclose(metric.compute().as_list(), peer.stats(), atol=1e-6)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    y, x = int(rng.integers(0, size - 4)), int(rng.integers(0, size - 4))
    m[y : y + int(rng.integers(3, size)), x : x + int(rng.integers(3, size))] = True
    return m


def _random_video(rng: np.random.Generator, n: int, t: int = 3, s: int = 12) -> list[np.ndarray]:
    tubes = []
    for _ in range(n):
        tube = np.zeros((t, s, s), bool)
        for f in range(t):
            if rng.random() < 0.8:
                tube[f] = _blob(rng, s)
        tubes.append(tube)
    return tubes


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_video_ap_invariances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = [tube for tube in _random_video(rng, int(rng.integers(1, 5))) if tube.any()]
    if not gt:
        return
    labels = [int(rng.integers(1, 3)) for _ in gt]
    perfect, empty = VideoAP(categories=[1, 2]), VideoAP(categories=[1, 2])
    perfect.update(_tubes(gt, labels, [1.0] * len(gt)), _tubes(gt, labels))
    empty.update(_tubes([], [], []), _tubes(gt, labels))
    assert perfect.compute().ap == pytest.approx(1.0)
    assert empty.compute().ap == 0.0 and empty.compute().ar100 == 0.0
    # Reordering instances (distinct scores) changes nothing.
    pred = _random_video(rng, 5)
    pl, ps = [int(rng.integers(1, 3)) for _ in pred], rng.permutation(len(pred)).astype(float).tolist()
    perm = rng.permutation(len(pred))
    a, b = VideoAP(categories=[1, 2]), VideoAP(categories=[1, 2])
    a.update(_tubes(pred, pl, ps), _tubes(gt, labels))
    b.update(
        _tubes([pred[i] for i in perm], [pl[i] for i in perm], [ps[i] for i in perm]), _tubes(gt, labels)
    )
    assert a.compute() == b.compute()


def test_video_ap_errors() -> None:
    metric = VideoAP(categories=[1])
    gt = _tubes([np.ones((3, 8, 8), bool)], [1])
    with pytest.raises(ValueError, match="scores"):
        metric.update(gt, gt)
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        metric.update(_tubes([np.ones((2, 8, 8), bool)], [1], [0.5]), gt)
    with pytest.raises(ValueError, match="unknown category ids"):
        metric.update(_tubes([np.ones((3, 8, 8), bool)], [4], [0.5]), gt)
    with pytest.raises(ValueError, match=r"\[N, T, H, W\]"):
        VideoInstances(masks=torch.zeros(3, 8, 8, dtype=torch.bool), labels=torch.tensor([1, 1, 1]))
    with pytest.raises(TypeError, match="VideoInstances"):
        metric.update(gt.masks, gt)  # type: ignore[arg-type]


# ---------------------------------------------------------------- VPQ


def test_an_id_switch_breaks_the_tube() -> None:
    # One thing tracked over 2 frames; the prediction is exact per frame but switches id.
    gt_map = np.zeros((2, 6, 6), np.int64)
    gt_map[:, :3, :] = 1
    pred_map = np.zeros_like(gt_map)
    pred_map[0][gt_map[0] == 1] = 5
    pred_map[1][gt_map[1] == 1] = 6
    metric = VideoPanopticQuality(categories=CATEGORIES, window_sizes=(1, 2))
    metric.update(
        [panoptic_result(pred_map[0], {5: 0}), panoptic_result(pred_map[1], {6: 0})],
        [panoptic_result(gt_map[0], {1: 0}), panoptic_result(gt_map[1], {1: 0})],
    )
    res = metric.compute()
    assert res.per_window[1].all.pq == 1.0  # every frame is perfect
    c = res.per_window[2].per_class[0]  # tube IoU of each predicted id is exactly 1/2: no match
    assert (c.tp, c.fp, c.fn) == (0, 2, 1)
    assert res.vpq == pytest.approx(0.5)


def _random_clip(
    seed: int, t: int
) -> tuple[list[tuple[np.ndarray, dict[int, int]]], list[tuple[np.ndarray, dict[int, int]]]]:
    rng = np.random.default_rng(seed)
    gm, gc = random_panoptic(rng, 10, 12, void=True)
    gts, preds = [], []
    for _ in range(t):  # the same tracks drift a little from frame to frame
        gm = np.roll(gm, int(rng.integers(-1, 2)), axis=1)
        present = set(np.unique(gm).tolist())
        gts.append((gm.copy(), {k: v for k, v in gc.items() if k in present}))
        preds.append(
            perturb(rng, *gts[-1]) if rng.random() < 0.8 else random_panoptic(rng, 10, 12, void=False)
        )
    return preds, gts


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(1, 5))
def test_window_of_one_frame_is_image_pq(seed: int, t: int) -> None:
    preds, gts = _random_clip(seed, t)
    vpq = VideoPanopticQuality(categories=CATEGORIES, window_sizes=(1,))
    pq = PanopticQuality(categories=CATEGORIES)
    # Give each frame's predicted segments their own ids so that no id changes category in the clip.
    preds = [
        (np.where(m > 0, m + 1000 * f, 0), {k + 1000 * f: v for k, v in c.items()})
        for f, (m, c) in enumerate(preds)
    ]
    vpq.update([panoptic_result(*p) for p in preds], [panoptic_result(*g) for g in gts])
    for p, g in zip(preds, gts):
        pq.update(panoptic_result(*p), panoptic_result(*g))
    assert vpq.compute().per_window[1] == pq.compute()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_vpq_invariances(seed: int) -> None:
    _, gts = _random_clip(seed, 4)
    frames = [panoptic_result(*g) for g in gts]
    perfect = VideoPanopticQuality(categories=CATEGORIES)
    perfect.update(frames, frames)
    assert perfect.compute().vpq == 1.0
    empty = VideoPanopticQuality(categories=CATEGORIES)
    empty.update([panoptic_result(np.zeros_like(g[0]), {}) for g in gts], frames)
    assert empty.compute().vpq == 0.0
    # Renaming track ids consistently through the clip changes nothing.
    rng = np.random.default_rng(seed)
    ids = sorted({k for g in gts for k in g[1]})
    rename = dict(zip(ids, (rng.permutation(1000)[: len(ids)] + 1).tolist()))
    renamed = []
    for m, c in gts:
        m2 = np.zeros_like(m)
        for old, new in rename.items():
            m2[m == old] = new
        renamed.append(panoptic_result(m2, {rename[k]: v for k, v in c.items()}))
    again = VideoPanopticQuality(categories=CATEGORIES)
    again.update(renamed, frames)
    assert again.compute().vpq == 1.0


def test_vpq_merge_short_clips_and_errors() -> None:
    metric = VideoPanopticQuality(categories=CATEGORIES)
    assert math.isnan(metric.compute().vpq)
    _, gts = _random_clip(1, 2)
    frames = [panoptic_result(*g) for g in gts]
    metric.update(frames, frames)
    res = metric.compute()
    assert res.vpq == 1.0 and math.isnan(res.per_window[4].all.pq)  # no 4-frame window in 2 frames
    other = VideoPanopticQuality(categories=CATEGORIES)
    other.update(frames, frames)
    assert metric.merge(other).num_videos == 2
    with pytest.raises(ValueError, match="frames"):
        metric.update(frames[:1], frames)
    with pytest.raises(ValueError, match="changes category"):
        m = gts[0][0]
        k = next(iter(gts[0][1]))
        bad = [panoptic_result(m, {**gts[0][1], k: 0}), panoptic_result(m, {**gts[0][1], k: 1})]
        metric.update(bad, [panoptic_result(*gts[0])] * 2)
    with pytest.raises(ValueError, match="window_sizes"):
        VideoPanopticQuality(categories=CATEGORIES, window_sizes=(0,))
