"""SemanticSegmentationMetric: agreement with torchmetrics' MulticlassJaccardIndex / accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from segblocks.metrics import SemanticSegmentationMetric
from segblocks.structures import SemanticResult


def _random_batch(seed: int, n: int, c: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        h, w = int(torch.randint(4, 30, (1,), generator=g)), int(torch.randint(4, 30, (1,), generator=g))
        # Restrict each image to a few classes so that some classes stay absent overall.
        allowed = torch.randperm(c, generator=g)[: max(1, c // 2)]
        target = allowed[torch.randint(0, len(allowed), (h, w), generator=g)]
        target[torch.rand(h, w, generator=g) < 0.2] = 255
        pred = target.clone()
        noise = torch.rand(h, w, generator=g) < 0.4
        pred[noise] = allowed[torch.randint(0, len(allowed), (int(noise.sum()),), generator=g)]
        pred[pred == 255] = allowed[0]
        out.append((pred, target))
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), c=st.integers(2, 9))
def test_miou_and_pixel_accuracy_match_torchmetrics(seed: int, n: int, c: int) -> None:
    ours = SemanticSegmentationMetric(num_classes=c, ignore_index=255)
    jac = MulticlassJaccardIndex(num_classes=c, ignore_index=255, average="macro")
    jac_cls = MulticlassJaccardIndex(num_classes=c, ignore_index=255, average="none")
    acc = MulticlassAccuracy(num_classes=c, ignore_index=255, average="micro")
    for pred, target in _random_batch(seed, n, c):
        ours.update(pred, target)
        jac.update(pred[None], target[None])
        jac_cls.update(pred[None], target[None])
        acc.update(pred.reshape(-1), target.reshape(-1))
    res = ours.compute()
    assert res.miou == pytest.approx(float(jac.compute()), abs=1e-6)
    assert res.pixel_accuracy == pytest.approx(float(acc.compute()), abs=1e-6)
    present = ~np.isnan(res.per_class_iou)
    np.testing.assert_allclose(res.per_class_iou[present], jac_cls.compute().numpy()[present], atol=1e-6)


def test_hand_worked_confusion() -> None:
    # 2 classes; target [[0, 0], [1, 255]], prediction [[0, 1], [1, 1]]:
    # class 0: TP 1, FN 1 -> IoU 1/2; class 1: TP 1, FP 1 -> IoU 1/2; accuracy 2/3.
    metric = SemanticSegmentationMetric(num_classes=2)
    metric.update(SemanticResult(torch.tensor([[0, 1], [1, 1]])), np.array([[0, 0], [1, 255]]))
    res = metric.compute()
    assert res.miou == pytest.approx(0.5)
    assert res.pixel_accuracy == pytest.approx(2 / 3)
    assert res.mean_accuracy == pytest.approx((0.5 + 1.0) / 2)
    np.testing.assert_array_equal(res.confusion, [[1, 1], [0, 1]])


def test_batches_merge_and_absent_classes() -> None:
    data = _random_batch(0, 4, 6)
    whole = SemanticSegmentationMetric(num_classes=6)
    parts = [SemanticSegmentationMetric(num_classes=6) for _ in range(2)]
    for i, (p, t) in enumerate(data):
        whole.update(p, t)
        parts[i % 2].update(p[None], t[None])  # a batch of one
    merged = parts[0].merge(parts[1]).compute()
    np.testing.assert_array_equal(merged.confusion, whole.compute().confusion)
    empty = SemanticSegmentationMetric(num_classes=3).compute()
    assert math.isnan(empty.miou) and math.isnan(empty.pixel_accuracy)


def test_perfect_and_wrong_predictions() -> None:
    target = torch.tensor([[0, 1, 2], [2, 1, 0]])
    metric = SemanticSegmentationMetric(num_classes=3)
    metric.update(target, target)
    assert metric.compute().miou == 1.0
    metric.reset()
    metric.update((target + 1) % 3, target)
    assert metric.compute().miou == 0.0


def test_clear_errors() -> None:
    metric = SemanticSegmentationMetric(num_classes=3)
    t = torch.zeros(4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="shape"):
        metric.update(torch.zeros(4, 5, dtype=torch.long), t)
    with pytest.raises(TypeError, match="integer"):
        metric.update(torch.zeros(4, 4), t)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        metric.update(torch.full((4, 4), 3), t)
    with pytest.raises(ValueError, match="ignore_index=255"):
        metric.update(t, torch.full((4, 4), 7))
    with pytest.raises(TypeError, match="SemanticResult"):
        metric.update([[0]], t)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dims"):
        metric.update(torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes"):
        SemanticSegmentationMetric(num_classes=0)
    with pytest.raises(ValueError, match="ignore_index"):
        SemanticSegmentationMetric(num_classes=3, ignore_index=1)
