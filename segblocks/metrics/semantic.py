"""Semantic segmentation metrics from a dataset-level confusion matrix: mIoU and pixel accuracy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from segblocks.metrics.base import Metric
from segblocks.structures import SemanticResult

__all__ = ["SemanticSegmentationMetric", "SemanticSegmentationResult"]


@dataclass(frozen=True)
class SemanticSegmentationResult:
    """Result of :class:`SemanticSegmentationMetric`.

    Attributes:
        miou: mean IoU over the classes that occur (in the ground truth or the prediction).
        pixel_accuracy: correctly labelled pixels / labelled pixels.
        mean_accuracy: per-class recall averaged over the classes present in the ground truth.
        per_class_iou: ``[C]`` IoU per class, NaN for classes that never occur.
        per_class_accuracy: ``[C]`` recall per class, NaN for classes absent from the ground truth.
        confusion: ``[C, C]`` int64 confusion matrix, rows ground truth, columns prediction.
    """

    miou: float
    pixel_accuracy: float
    mean_accuracy: float
    per_class_iou: np.ndarray
    per_class_accuracy: np.ndarray
    confusion: np.ndarray


def _as_label_tensor(name: str, value: object) -> Tensor:
    if isinstance(value, SemanticResult):
        value = value.label_map
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name}: expected a SemanticResult, torch.Tensor or numpy.ndarray, got {type(value).__name__}"
        )
    if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
        raise TypeError(f"{name}: expected an integer label map, got dtype {value.dtype}")
    if value.ndim not in (2, 3):
        raise ValueError(
            f"{name}: expected 2 dims [H, W] or 3 dims [B, H, W], got shape {tuple(value.shape)}"
        )
    return value


class SemanticSegmentationMetric(Metric[SemanticSegmentationResult]):
    """Dataset-level mIoU and pixel accuracy from an accumulated confusion matrix.

    Pixels whose ground truth equals ``ignore_index`` are left out. The IoU of a class is
    ``TP / (TP + FP + FN)`` over the whole dataset; the mean is taken over classes with a non-empty
    union (as in detectron2's ``SemSegEvaluator`` and torchmetrics' ``MulticlassJaccardIndex``).
    The confusion matrix is accumulated on the device of the inputs, without host syncs.

    Example:
        >>> metric = SemanticSegmentationMetric(num_classes=3)
        >>> metric.update(torch.tensor([[0, 1], [2, 2]]), torch.tensor([[0, 1], [2, 255]]))
        >>> metric.compute().miou
        1.0

    Args:
        num_classes: ``C``, labels are ``0..C-1``.
        ignore_index: ground-truth label to ignore (may lie outside ``0..C-1``, e.g. 255).
        validate: check that every label is in range (costs a host sync per update on GPU).
    """

    def __init__(self, *, num_classes: int, ignore_index: int | None = 255, validate: bool = True) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index: {ignore_index} is a valid class id of 0..{num_classes - 1}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.validate = validate
        super().__init__()

    def reset(self) -> None:
        """Forget every update."""
        self._confusion: Tensor | None = None

    def config(self) -> tuple[Any, ...]:
        """Number of classes and ignore index."""
        return (self.num_classes, self.ignore_index)

    def update(self, pred: SemanticResult | Tensor | np.ndarray, target: Tensor | np.ndarray) -> None:
        """Add one image ``[H, W]`` or a batch ``[B, H, W]``.

        Args:
            pred: predicted labels ``[H, W]`` / ``[B, H, W]`` (or a ``SemanticResult``), ``0..C-1``.
            target: ground-truth labels of the same shape, ``0..C-1`` or ``ignore_index``.

        Raises:
            TypeError: a label map is not an integer tensor / array.
            ValueError: shapes differ, or a label is out of range (unknown category).
        """
        p = _as_label_tensor("pred", pred)
        t = _as_label_tensor("target", target).to(p.device)
        if p.shape != t.shape:
            raise ValueError(f"pred: expected the target's shape {tuple(t.shape)}, got {tuple(p.shape)}")
        c = self.num_classes
        p = p.long().reshape(-1)
        t = t.long().reshape(-1)
        valid = (
            t != self.ignore_index if self.ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
        )
        if self.validate:
            bad_p = (p < 0) | (p >= c)
            if bool(bad_p.any()):
                raise ValueError(
                    f"pred: labels must be in 0..{c - 1}, got {sorted(set(p[bad_p].tolist()))[:10]}"
                )
            bad_t = valid & ((t < 0) | (t >= c))
            if bool(bad_t.any()):
                raise ValueError(
                    f"target: labels must be in 0..{c - 1} or ignore_index={self.ignore_index}, "
                    f"got {sorted(set(t[bad_t].tolist()))[:10]}"
                )
        # Ignored pixels go to an extra bin that is dropped: no boolean indexing, hence no host sync.
        flat = torch.where(valid, t * c + p, torch.full_like(t, c * c))
        counts = torch.bincount(flat, minlength=c * c + 1)[: c * c].reshape(c, c)
        if self._confusion is None:
            self._confusion = counts
        else:
            self._confusion = self._confusion + counts.to(self._confusion.device)

    @property
    def confusion(self) -> np.ndarray:
        """``[C, C]`` int64 confusion matrix so far (rows ground truth, columns prediction)."""
        if self._confusion is None:
            return np.zeros((self.num_classes, self.num_classes), np.int64)
        return self._confusion.cpu().numpy().astype(np.int64)

    def get_state(self) -> dict[str, Any]:
        """The confusion matrix."""
        return {"confusion": self.confusion}

    def merge_state(self, state: dict[str, Any]) -> None:
        """Add another metric's confusion matrix.

        Args:
            state: a dictionary from :meth:`get_state` of a metric with the same settings.
        """
        other = torch.as_tensor(np.asarray(state["confusion"], np.int64))
        if self._confusion is None:
            self._confusion = other
        else:
            self._confusion = self._confusion + other.to(self._confusion.device)

    def compute(self) -> SemanticSegmentationResult:
        """mIoU, pixel accuracy and mean class accuracy."""
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        gt = cm.sum(axis=1).astype(np.float64)
        pr = cm.sum(axis=0).astype(np.float64)
        union = gt + pr - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(gt > 0, tp / gt, np.nan)
        total = cm.sum()
        return SemanticSegmentationResult(
            miou=float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan,
            pixel_accuracy=float(tp.sum() / total) if total else math.nan,
            mean_accuracy=float(np.nanmean(acc)) if np.isfinite(acc).any() else math.nan,
            per_class_iou=iou,
            per_class_accuracy=acc,
            confusion=cm,
        )
