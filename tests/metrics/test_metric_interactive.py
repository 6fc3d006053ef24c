"""NoC@85 / NoC@90 and 1-click IoU: hand-worked curves, click sessions with test doubles, errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from segblocks.metrics import NoCMetric, click_session


@dataclass
class _Click:
    x: int
    y: int
    positive: bool


def _centre(region: np.ndarray) -> tuple[int, int]:
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def first_click_double(gt: np.ndarray) -> _Click:
    x, y = _centre(gt)
    return _Click(x, y, True)


def next_click_double(gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray | None = None) -> _Click | None:
    clicked = np.zeros_like(gt) if clicked is None else clicked
    fn, fp = gt & ~pred & ~clicked, ~gt & pred & ~clicked
    if not fn.any() and not fp.any():
        return None
    positive = fn.sum() > fp.sum()
    x, y = _centre(fn if positive else fp)
    return _Click(x, y, bool(positive))


CLICKS = {"first_click": first_click_double, "next_click": next_click_double}


def _hand_curves() -> list[tuple[list[float], int, int]]:
    # (IoU after each click, NoC@85, NoC@90)
    return [([0.5, 0.86, 0.91], 2, 3), ([0.95], 1, 1), ([0.1] * 20, 20, 20), ([0.88, 0.8, 0.9], 1, 3)]


def test_noc_from_hand_worked_curves() -> None:
    metric = NoCMetric()
    for curve, _, _ in _hand_curves():
        metric.update(curve)
    res = metric.compute()
    curves = _hand_curves()
    assert res.noc[0.85] == pytest.approx(np.mean([c[1] for c in curves]))
    assert res.noc[0.9] == pytest.approx(np.mean([c[2] for c in curves]))
    assert res.failures == {0.85: 1, 0.9: 1}
    assert res.one_click_iou == pytest.approx(np.mean([c[0][0] for c in curves]))
    assert res.mean_iou_per_click[-1] == pytest.approx(np.mean([0.91, 0.95, 0.1, 0.9]))  # padded


class OracleAfter:
    """A test double: an empty mask until the k-th click, then the ground truth."""

    def __init__(self, gt: np.ndarray, k: int) -> None:
        self.gt, self.k = gt, k
        self.calls: list[int] = []

    def __call__(self, image: np.ndarray, clicks: Sequence[_Click]) -> np.ndarray:
        self.calls.append(len(clicks))
        return self.gt.copy() if len(clicks) >= self.k else np.zeros_like(self.gt)


class Painter:
    """A test double that paints a square around every click (positive adds, negative removes)."""

    def __init__(self, radius: int) -> None:
        self.radius = radius

    def __call__(self, image: np.ndarray, clicks: Sequence[_Click]) -> np.ndarray:
        out = np.zeros(image.shape[:2], np.float32)
        r = self.radius
        for c in clicks:
            out[max(c.y - r, 0) : c.y + r + 1, max(c.x - r, 0) : c.x + r + 1] = 0.9 if c.positive else 0.1
        return out


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 25), size=st.integers(5, 10))
def test_oracle_after_k_clicks_needs_k_clicks(k: int, size: int) -> None:
    gt = np.zeros((16, 16), bool)
    gt[2 : 2 + size, 3 : 3 + size] = True
    model = OracleAfter(gt, k)
    metric = NoCMetric()
    # Exclude only the clicked pixel itself, so that the object never runs out of click positions.
    curve = metric.evaluate(model, np.zeros((16, 16, 3), np.uint8), gt, click_radius=0, **CLICKS)
    res = metric.compute()
    assert res.noc[0.85] == res.noc[0.9] == min(k, 20)
    assert res.failures[0.9] == int(k > 20)
    assert model.calls[-1] == min(k, 20)  # the session stopped once IoU reached 0.9 (or at the cap)
    assert curve.shape == (20,) and curve[-1] == (1.0 if k <= 20 else 0.0)


def test_a_painting_model_converges_with_distinct_clicks() -> None:
    gt = np.zeros((20, 20), bool)
    gt[4:12, 3:15] = True
    clicks_seen: list[tuple[int, int]] = []

    def model(image: np.ndarray, clicks: Sequence[_Click]) -> np.ndarray:
        clicks_seen.append((clicks[-1].x, clicks[-1].y))
        return Painter(1)(image, clicks)

    curve = click_session(model, np.zeros((20, 20, 3), np.uint8), gt, **CLICKS)
    assert curve[0] == pytest.approx(9 / 96)  # one 3x3 square inside the 8x12 object
    assert curve[-1] >= 0.9  # converges (and stops) within the cap
    assert len(set(clicks_seen)) == len(clicks_seen)  # clicked pixels are not clicked again


def test_a_session_ends_when_every_error_pixel_was_clicked() -> None:
    # A 3x3 object is covered by the 3x3 exclusion zone of its first click: no further click exists,
    # so the curve is padded with the first IoU.
    gt = np.zeros((9, 9), bool)
    gt[3:6, 3:6] = True
    model = OracleAfter(gt, 2)
    curve = click_session(model, np.zeros((9, 9, 3)), gt, **CLICKS)
    assert model.calls == [1] and np.all(curve == 0.0)


def test_empty_predictions_never_succeed() -> None:
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True
    metric = NoCMetric(thresholds=(0.5, 0.85, 0.9), max_clicks=5)
    metric.evaluate(lambda img, clicks: np.zeros((8, 8), bool), np.zeros((8, 8, 3)), gt, **CLICKS)
    res = metric.compute()
    assert res.noc == {0.5: 5, 0.85: 5, 0.9: 5} and res.one_click_iou == 0.0


@settings(max_examples=30, deadline=None)
@given(curve=st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_noc_is_monotone_in_the_threshold(curve: list[float]) -> None:
    metric = NoCMetric(thresholds=(0.5, 0.85, 0.9))
    metric.update(curve)
    noc = metric.compute().noc
    assert 1 <= noc[0.5] <= noc[0.85] <= noc[0.9] <= 20


def test_merge_and_errors() -> None:
    a, b = NoCMetric(), NoCMetric()
    a.update([0.9])
    b.update([0.1, 0.95])
    assert a.merge(b).compute().noc[0.9] == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"1\.\.20"):
        a.update([0.5] * 21)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        a.update([1.5])
    with pytest.raises(ValueError, match="thresholds"):
        NoCMetric(thresholds=(0.0,))
    gt = np.zeros((8, 8), bool)
    with pytest.raises(ValueError, match="empty"):
        click_session(lambda i, c: gt, np.zeros((8, 8, 3)), gt, **CLICKS)
    gt[2:5, 2:5] = True
    with pytest.raises(ValueError, match="shape"):
        click_session(lambda i, c: np.zeros((4, 4), bool), np.zeros((8, 8, 3)), gt, **CLICKS)
    with pytest.raises(TypeError, match="bool"):
        click_session(lambda i, c: gt, np.zeros((8, 8, 3)), gt.astype(np.uint8), **CLICKS)
