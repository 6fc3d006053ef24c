"""Interactive segmentation metrics: NoC@85 / NoC@90 with a click cap, and the IoU after one click.

The protocol is SEEM's: the first click is the positive, centre-most point of the object; each
next click goes to the larger of the false-negative / false-positive regions (positive for a
false negative), at its centre-most point, avoiding pixels near earlier clicks; at most 20 clicks;
a session stops once IoU reaches the highest threshold and its remaining clicks repeat the last
IoU. NoC@t is the 1-based index of the first click with IoU >= t, or the cap when none reaches it.
The click simulator is :mod:`segblocks.metrics.clicks` (``first_click`` / ``next_click``, which the
shapes world's prompt sampler shares) unless other functions are passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from torch import Tensor

from segblocks.metrics._arrays import check_array, to_numpy
from segblocks.metrics.base import Metric
from segblocks.metrics.clicks import first_click as default_first_click
from segblocks.metrics.clicks import next_click as default_next_click

__all__ = ["ClickLike", "ClickPredictor", "NoCMetric", "NoCResult", "click_session", "mask_iou_single"]


class ClickLike(Protocol):
    """A click: pixel ``(x, y)`` and whether it is positive (:class:`segblocks.metrics.clicks.Click`)."""

    x: int
    y: int
    positive: bool


ClickPredictor = Callable[[np.ndarray, Sequence[Any]], "np.ndarray | Tensor"]
"""Any model that maps ``(image [H, W, 3], clicks so far)`` to a mask ``[H, W]`` (bool or probability)."""


def mask_iou_single(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two binary masks (1 when both are empty).

    Args:
        pred: ``[H, W]`` bool predicted mask.
        gt: ``[H, W]`` bool ground-truth mask.

    Returns:
        The IoU in ``[0, 1]``.
    """
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def _binary(name: str, mask: object, shape: tuple[int, ...], threshold: float) -> np.ndarray:
    arr = to_numpy(name, mask)
    check_array(name, arr, 2, "[H, W]", "number")
    if arr.shape != shape:
        raise ValueError(
            f"{name}: expected a mask of the ground truth's shape {shape}, got {tuple(arr.shape)}"
        )
    return arr.astype(bool) if arr.dtype == np.bool_ else arr > threshold


def click_session(
    predictor: ClickPredictor,
    image: np.ndarray,
    gt_mask: np.ndarray | Tensor,
    *,
    max_clicks: int = 20,
    stop_iou: float = 0.9,
    threshold: float = 0.5,
    click_radius: int = 1,
    first_click: Callable[[np.ndarray], Any] | None = None,
    next_click: Callable[..., Any] | None = None,
) -> np.ndarray:
    """Simulate clicks on one object and record the IoU after each click.

    Args:
        predictor: maps ``(image, clicks)`` to a mask ``[H, W]``: bool, or probabilities
            thresholded at ``threshold``.
        image: ``[H, W, 3]`` image handed to the predictor unchanged.
        gt_mask: ``[H, W]`` bool, non-empty object mask.
        max_clicks: click cap.
        stop_iou: stop once IoU reaches this; later entries repeat the last IoU.
        threshold: probability threshold for non-bool predictions.
        click_radius: pixels within this (square) distance of a click are not clicked again.
        first_click: ``gt_mask -> click`` (default: :func:`segblocks.metrics.clicks.first_click`).
        next_click: ``(gt_mask, pred_mask, clicked) -> click | None`` (default: :func:`segblocks.metrics.clicks.next_click`).

    Returns:
        ``[max_clicks]`` float64 IoU after clicks ``1..max_clicks``.

    Raises:
        ValueError: empty or non-2D ground truth, a prediction of the wrong size, bad settings.
        TypeError: wrong dtypes.
    """
    gt = to_numpy("gt_mask", gt_mask)
    check_array("gt_mask", gt, 2, "[H, W]", "bool")
    if not gt.any():
        raise ValueError("gt_mask: the object mask is empty; there is nothing to click on")
    if max_clicks < 1:
        raise ValueError(f"max_clicks: expected a positive int, got {max_clicks}")
    first_click = first_click or default_first_click
    next_click = next_click or default_next_click
    h, w = gt.shape
    clicked = np.zeros((h, w), bool)
    clicks: list[Any] = []
    ious: list[float] = []
    click = first_click(gt)
    while click is not None and len(clicks) < max_clicks:
        if not (0 <= int(click.x) < w and 0 <= int(click.y) < h):
            raise ValueError(f"click: ({click.x}, {click.y}) lies outside the {w}x{h} image")
        clicks.append(click)
        y0, x0 = max(int(click.y) - click_radius, 0), max(int(click.x) - click_radius, 0)
        clicked[y0 : int(click.y) + click_radius + 1, x0 : int(click.x) + click_radius + 1] = True
        pred = _binary("prediction", predictor(image, list(clicks)), (h, w), threshold)
        ious.append(mask_iou_single(pred, gt))
        if ious[-1] >= stop_iou or len(clicks) == max_clicks:
            break
        click = next_click(gt, pred, clicked)
    return np.asarray(ious + [ious[-1]] * (max_clicks - len(ious)), np.float64)


@dataclass(frozen=True)
class NoCResult:
    """Result of :class:`NoCMetric` (NaN before any object was seen).

    Attributes:
        noc: mean number of clicks to reach each IoU threshold (capped).
        failures: number of objects that never reached each threshold within the cap.
        one_click_iou: mean IoU after the first click (1-IoU).
        mean_iou_per_click: ``[max_clicks]`` mean IoU after each click.
        num_objects: number of objects evaluated.
    """

    noc: dict[float, float]
    failures: dict[float, int]
    one_click_iou: float
    mean_iou_per_click: np.ndarray
    num_objects: int


class NoCMetric(Metric[NoCResult]):
    """Number of clicks (NoC@t) and 1-click IoU over objects, streaming.

    Feed either per-click IoU curves (:meth:`update`) or a predictor (:meth:`evaluate`, which runs
    :func:`click_session` and stops at the highest threshold).

    Example:
        >>> metric = NoCMetric()
        >>> metric.evaluate(model, image, gt_mask)  # doctest: +SKIP
        >>> metric.compute().noc[0.9]  # doctest: +SKIP

    Args:
        thresholds: IoU thresholds t of NoC@t.
        max_clicks: the click cap (a failed object counts ``max_clicks``).
    """

    def __init__(self, *, thresholds: Sequence[float] = (0.85, 0.9), max_clicks: int = 20) -> None:
        ts = tuple(float(t) for t in thresholds)
        if not ts or any(not 0.0 < t <= 1.0 for t in ts):
            raise ValueError(f"thresholds: expected IoU thresholds in (0, 1], got {list(thresholds)}")
        if isinstance(max_clicks, bool) or not isinstance(max_clicks, int) or max_clicks < 1:
            raise ValueError(f"max_clicks: expected a positive int, got {max_clicks!r}")
        self.thresholds = ts
        self.max_clicks = max_clicks
        super().__init__()

    def reset(self) -> None:
        """Forget every update."""
        self._curves: list[np.ndarray] = []

    def config(self) -> tuple[Any, ...]:
        """Thresholds and click cap."""
        return (self.thresholds, self.max_clicks)

    def update(self, ious: Sequence[float] | np.ndarray | Tensor) -> None:
        """Add one object's IoU curve.

        Args:
            ious: ``[k]`` IoU after clicks ``1..k`` (``k <= max_clicks``); a shorter curve is
                padded with its last IoU (the session stopped early).

        Raises:
            ValueError: empty curve, longer than the cap, or values outside ``[0, 1]``.
        """
        arr = (
            to_numpy("ious", ious) if isinstance(ious, np.ndarray | Tensor) else np.asarray(ious, np.float64)
        )
        check_array("ious", arr, 1, "[K]", "number")
        arr = arr.astype(np.float64)
        if arr.size == 0 or arr.size > self.max_clicks:
            raise ValueError(f"ious: expected 1..{self.max_clicks} values (one per click), got {arr.size}")
        if not np.all((arr >= 0) & (arr <= 1)):
            raise ValueError("ious: IoU values must lie in [0, 1]")
        self._curves.append(np.concatenate([arr, np.full(self.max_clicks - arr.size, arr[-1])]))

    def evaluate(
        self, predictor: ClickPredictor, image: np.ndarray, gt_mask: np.ndarray | Tensor, **kwargs: Any
    ) -> np.ndarray:
        """Run a click session on one object and add it.

        Args:
            predictor: maps ``(image, clicks)`` to a mask.
            image: ``[H, W, 3]`` image.
            gt_mask: ``[H, W]`` bool object mask.
            **kwargs: more :func:`click_session` options (threshold, click functions, ...).

        Returns:
            ``[max_clicks]`` IoU after each click.
        """
        kwargs.setdefault("stop_iou", max(self.thresholds))
        curve = click_session(predictor, image, gt_mask, max_clicks=self.max_clicks, **kwargs)
        self.update(curve)
        return curve

    def get_state(self) -> dict[str, Any]:
        """The per-object IoU curves."""
        return {"curves": [c.copy() for c in self._curves]}

    def merge_state(self, state: dict[str, Any]) -> None:
        """Append another metric's objects.

        Args:
            state: a dictionary from :meth:`get_state` of a metric with the same settings.
        """
        self._curves.extend(np.asarray(c, np.float64) for c in state["curves"])

    def compute(self) -> NoCResult:
        """NoC@t, failures, 1-click IoU and the mean IoU curve."""
        if not self._curves:
            return NoCResult(
                noc={t: math.nan for t in self.thresholds},
                failures={t: 0 for t in self.thresholds},
                one_click_iou=math.nan,
                mean_iou_per_click=np.full(self.max_clicks, math.nan),
                num_objects=0,
            )
        curves = np.stack(self._curves)  # [N, max_clicks]
        noc: dict[float, float] = {}
        failures: dict[float, int] = {}
        for t in self.thresholds:
            reached = curves >= t
            hit = reached.any(axis=1)
            clicks = np.where(hit, reached.argmax(axis=1) + 1, self.max_clicks)
            noc[t] = float(clicks.mean())
            failures[t] = int((~hit).sum())
        return NoCResult(
            noc=noc,
            failures=failures,
            one_click_iou=float(curves[:, 0].mean()),
            mean_iou_per_click=curves.mean(axis=0),
            num_objects=len(curves),
        )
