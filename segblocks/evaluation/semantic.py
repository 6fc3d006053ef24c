"""Semantic segmentation scores (mIoU, pixel accuracy) from folders of ADE20K-style label PNGs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segblocks._validation import check_positive_int, check_vocabulary
from segblocks.data.formats import IGNORE_INDEX, DatasetFormatError
from segblocks.data.formats._io import read_index_png
from segblocks.evaluation.report import EvaluationReport
from segblocks.metrics import SemanticSegmentationMetric

__all__ = ["evaluate_semantic"]

logger = logging.getLogger(__name__)


def _decode(png: np.ndarray, reduce_zero_label: bool) -> np.ndarray:
    labels = png.astype(np.int64)
    return np.where(labels == 0, IGNORE_INDEX, labels - 1) if reduce_zero_label else labels


def evaluate_semantic(
    gt_dir: str | Path,
    pred_dir: str | Path,
    *,
    num_classes: int,
    reduce_zero_label: bool = True,
    class_names: Sequence[str] | None = None,
) -> EvaluationReport:
    """mIoU and pixel accuracy of prediction PNGs against ground-truth PNGs of the same stems.

    Both folders hold single-channel PNGs (grey or palette) in the same encoding: with
    ``reduce_zero_label`` (ADE20K's), value 0 is "other" (ignored in the ground truth, not a valid
    prediction) and ``v > 0`` is class ``v - 1``; otherwise values are class ids and 255 is ignored
    in the ground truth. IoU per class from the dataset-level confusion matrix; the mean is over
    the classes that occur in the ground truth or the predictions.

    Args:
        gt_dir: the ground-truth PNG folder (e.g. ``annotations/validation``).
        pred_dir: the prediction PNG folder, one ``<stem>.png`` per ground-truth PNG.
        num_classes: the number of classes ``C``.
        reduce_zero_label: the PNG encoding (see above).
        class_names: optional ``C`` names for the per-class rows.

    Returns:
        A report with ``mIoU``, ``pixel_accuracy``, ``mean_accuracy``, per-class IoU and the
        :class:`~segblocks.metrics.SemanticSegmentationResult`.

    Raises:
        FileNotFoundError: a folder or a prediction PNG is missing.
        DatasetFormatError: no ground-truth PNG, a colour PNG, sizes that differ, labels beyond ``C``.
        TypeError / ValueError: bad ``num_classes`` or ``class_names``.
    """
    c = check_positive_int("num_classes", num_classes)
    names = (
        check_vocabulary("class_names", class_names)
        if class_names is not None
        else [str(k) for k in range(c)]
    )
    if len(names) != c:
        raise ValueError(f"class_names: expected {c} names (num_classes), got {len(names)}")
    gt_root, pred_root = Path(gt_dir), Path(pred_dir)
    for d in (gt_root, pred_root):
        if not d.is_dir():
            raise FileNotFoundError(f"folder not found: {d}")
    gt_files = sorted(gt_root.glob("*.png"))
    if not gt_files:
        raise DatasetFormatError(f"{gt_root}: no PNG files")
    metric = SemanticSegmentationMetric(num_classes=c, ignore_index=IGNORE_INDEX)
    for gt_file in gt_files:
        pred_file = pred_root / gt_file.name
        gt = _decode(read_index_png(gt_file, "label PNG"), reduce_zero_label)
        raw = read_index_png(pred_file, "prediction PNG")
        pred = _decode(raw, reduce_zero_label)
        if pred.shape != gt.shape:
            raise DatasetFormatError(
                f"{pred_file}: prediction of size {pred.shape}, the ground truth is {gt.shape}"
            )
        bad = (pred < 0) | (pred >= c)
        if bad.any():
            raise DatasetFormatError(
                f"{pred_file}: predicted PNG values {np.unique(raw[bad]).tolist()[:10]} are not classes of 0..{c - 1}"
            )
        try:
            metric.update(pred, gt)
        except ValueError as e:
            raise DatasetFormatError(f"{gt_file}: {e}") from e
    result = metric.compute()
    logger.info("semantic: mIoU %.4f over %d images", result.miou, len(gt_files))
    return EvaluationReport(
        task="semantic",
        summary={
            "mIoU": result.miou,
            "pixel_accuracy": result.pixel_accuracy,
            "mean_accuracy": result.mean_accuracy,
        },
        counts={"images": len(gt_files), "classes": c},
        rows={names[k]: {"IoU": float(result.per_class_iou[k])} for k in range(c)},
        result=result,
    )
