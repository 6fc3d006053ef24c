"""MaskAP: every COCOeval number on random ground truth and perturbed predictions, invariances, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from coco_peer import CocoPeer
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.metrics import MaskAP
from segblocks.structures import InstanceResult, Targets

CATS = [1, 2, 5]


def _rect(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    y, x = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
    m[y : y + int(rng.integers(2, h)), x : x + int(rng.integers(2, w))] = True
    return m


def _stack(masks: list[np.ndarray], h: int, w: int) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, h, w), bool)


def _random_image(rng: np.random.Generator, h: int, w: int, crowd_rate: float = 0.15) -> dict[str, object]:
    gms, gl, gc = [], [], []
    for _ in range(int(rng.integers(0, 6))):
        gms.append(_rect(rng, h, w))
        gl.append(int(rng.choice(CATS)))
        gc.append(bool(rng.random() < crowd_rate))
    dms, dl, ds = [], [], []
    for m, c in zip(gms, gl):  # perturbed copies of the ground truth
        for _ in range(int(rng.integers(0, 3))):
            dms.append(np.roll(m, (int(rng.integers(-5, 6)), int(rng.integers(-5, 6))), axis=(0, 1)))
            dl.append(c if rng.random() < 0.8 else int(rng.choice(CATS)))
            ds.append(float(np.round(rng.random(), 1)))  # coarse scores: ties across images
    for _ in range(int(rng.integers(0, 3))):  # spurious detections, sometimes empty masks
        dms.append(_rect(rng, h, w) if rng.random() < 0.8 else np.zeros((h, w), bool))
        dl.append(int(rng.choice(CATS)))
        ds.append(float(rng.random()))
    return {"gm": _stack(gms, h, w), "gl": gl, "gc": gc, "dm": _stack(dms, h, w), "dl": dl, "ds": ds}


def _update(metric: MaskAP, image_id: int, d: dict[str, object]) -> None:
    metric.update(
        InstanceResult(
            torch.from_numpy(d["dm"]),  # type: ignore[arg-type]
            torch.tensor(d["dl"], dtype=torch.long),
            torch.tensor(d["ds"], dtype=torch.float64),
        ),
        Targets(torch.from_numpy(d["gm"]), torch.tensor(d["gl"], dtype=torch.long)),  # type: ignore[arg-type]
        target_crowd=torch.tensor(d["gc"], dtype=torch.bool),
        image_id=image_id,
    )


def _peer_add(peer: CocoPeer, image_id: int, d: dict[str, object]) -> None:
    peer.add_image(image_id, d["gm"], d["gl"], d["gc"], d["dm"], d["dl"], d["ds"])  # type: ignore[arg-type]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8))
def test_every_number_matches_cocoeval_on_random_images(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    # Sizes straddle the small / medium / large area ranges (32² and 96²).
    h, w = int(rng.integers(20, 130)), int(rng.integers(20, 130))
    ours, peer = MaskAP(categories=CATS), CocoPeer(CATS)
    for i in rng.permutation(n).tolist():  # ids arrive out of order; ranking must not depend on it
        d = _random_image(rng, h, w)
        _update(ours, i, d)
        _peer_add(peer, i, d)
    np.testing.assert_allclose(ours.compute().as_list(), peer.stats(), atol=1e-6)


def test_more_than_100_detections_and_the_caps() -> None:
    rng = np.random.default_rng(7)
    ours, peer = MaskAP(categories=CATS), CocoPeer(CATS)
    for i in range(3):
        d = _random_image(rng, 40, 50, crowd_rate=0.0)
        extra = [_rect(rng, 40, 50) for _ in range(120)]
        d["dm"] = np.concatenate([d["dm"], np.stack(extra)])  # type: ignore[list-item]
        d["dl"] = list(d["dl"]) + [int(rng.choice(CATS)) for _ in extra]  # type: ignore[call-overload]
        d["ds"] = list(d["ds"]) + rng.random(len(extra)).tolist()  # type: ignore[call-overload]
        _update(ours, i, d)
        _peer_add(peer, i, d)
    np.testing.assert_allclose(ours.compute().as_list(), peer.stats(), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_ground_truth_as_prediction_is_perfect_empty_is_zero_and_order_is_irrelevant(seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = [_random_image(rng, 30, 30, crowd_rate=0.0) for _ in range(3)]
    if not any(len(d["gl"]) for d in images):  # type: ignore[arg-type]
        return
    perfect, empty = MaskAP(categories=CATS), MaskAP(categories=CATS)
    for i, d in enumerate(images):
        gt = {**d, "dm": d["gm"], "dl": d["gl"], "ds": [1.0] * len(d["gl"])}  # type: ignore[arg-type]
        _update(perfect, i, gt)
        _update(empty, i, {**d, "dm": np.zeros((0, 30, 30), bool), "dl": [], "ds": []})
    res = perfect.compute()
    assert res.ap == pytest.approx(1.0) and res.ar100 == pytest.approx(1.0)
    assert empty.compute().ap == 0.0 and empty.compute().ar100 == 0.0
    # With distinct scores (ties are broken by input order, as in COCOeval), permuting the
    # detections within an image changes nothing.
    a, b = MaskAP(categories=CATS), MaskAP(categories=CATS)
    for i, d in enumerate(images):
        n = len(d["dl"])  # type: ignore[arg-type]
        d = {**d, "ds": rng.permutation(n).astype(float).tolist()}
        _update(a, i, d)
        perm = rng.permutation(n)
        dl, ds = d["dl"], d["ds"]
        _update(b, i, {**d, "dm": d["dm"][perm], "dl": [dl[j] for j in perm], "ds": [ds[j] for j in perm]})  # type: ignore[index]
    assert a.compute() == b.compute()


def test_merge_matches_one_pass() -> None:
    rng = np.random.default_rng(11)
    images = [_random_image(rng, 40, 40) for _ in range(6)]
    whole, left, right = (MaskAP(categories=CATS) for _ in range(3))
    for i, d in enumerate(images):
        _update(whole, i, d)
        _update(left if i % 2 else right, i, d)
    assert left.merge(right).compute() == whole.compute()


def test_stuff_targets_are_skipped_and_areas_can_be_given() -> None:
    m = torch.zeros(2, 8, 8, dtype=torch.bool)
    m[0, :4] = True
    m[1, 4:] = True
    targets = Targets(m, torch.tensor([1, 2]), is_thing=torch.tensor([True, False]))
    pred = InstanceResult(m[:1].clone(), torch.tensor([1]), torch.tensor([0.9]))
    metric = MaskAP(categories=CATS)
    metric.update(pred, targets, target_areas=torch.tensor([5000.0, 1.0]))
    res = metric.compute()
    assert res.per_class[1] == pytest.approx(1.0) and res.per_class[2] == -1.0
    assert res.apm == pytest.approx(1.0) and res.aps == -1.0  # the given area (5000) is medium


def test_clear_errors() -> None:
    metric = MaskAP(categories=CATS)
    m = torch.zeros(1, 4, 4, dtype=torch.bool)
    t = Targets(m, torch.tensor([1]))
    p = InstanceResult(m, torch.tensor([1]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="target's size"):
        metric.update(
            InstanceResult(torch.zeros(1, 4, 5, dtype=torch.bool), torch.tensor([1]), torch.tensor([0.5])), t
        )
    with pytest.raises(ValueError, match="unknown category ids \\[7\\]"):
        metric.update(InstanceResult(m, torch.tensor([7]), torch.tensor([0.5])), t)
    with pytest.raises(TypeError, match="InstanceResult"):
        metric.update(t, t)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool tensor"):
        metric.update(p, t, target_crowd=torch.tensor([1]))
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        metric.update(p, t, target_areas=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="repeated"):
        MaskAP(categories=[1, 1])
    with pytest.raises(ValueError, match="max_dets"):
        MaskAP(categories=[1], max_dets=[10, 1])
