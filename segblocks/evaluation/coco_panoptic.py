"""COCO panoptic PQ from files alone, as panopticapi's ``pq_compute(gt_json, pred_json, gt_folder, pred_folder)``."""

from __future__ import annotations

import logging
from pathlib import Path

from segblocks.data.formats import DatasetFormatError, read_coco_panoptic, read_coco_panoptic_results
from segblocks.evaluation._pq_files import JsonSegment, count_pair, pq_rows, pq_summary
from segblocks.evaluation.report import EvaluationReport
from segblocks.metrics._panoptic_core import PQCounts
from segblocks.metrics.panoptic_quality import summarise_counts

__all__ = ["evaluate_coco_panoptic"]

logger = logging.getLogger(__name__)


def _default_folder(json_file: Path) -> Path:
    return json_file.with_suffix("")  # panopticapi: the JSON's path without ".json"


def evaluate_coco_panoptic(
    gt_json: str | Path,
    pred_json: str | Path,
    gt_folder: str | Path | None = None,
    pred_folder: str | Path | None = None,
) -> EvaluationReport:
    """Panoptic quality of COCO panoptic prediction files against COCO panoptic ground truth.

    Needs no RGB image. Follows panopticapi: categories come from the ground-truth JSON (the
    predictions JSON needs only ``annotations``); every ground-truth image needs a prediction
    (predictions of other images are ignored); ground-truth areas are the JSON's ``area``; VOID
    (id 0) and crowd rules as in :func:`segblocks.evaluation._pq_files.count_pair`; PQ, SQ and RQ
    per category, averaged over the categories with ``tp + fp + fn > 0``.

    Args:
        gt_json: the ground-truth panoptic JSON (``images``, ``annotations``, ``categories``).
        pred_json: the predictions JSON (``annotations`` with ``image_id``, ``file_name``,
            ``segments_info``).
        gt_folder: the ground-truth PNG folder (default: ``gt_json`` without ``.json``).
        pred_folder: the prediction PNG folder (default: ``pred_json`` without ``.json``).

    Returns:
        A report with ``PQ``, ``SQ``, ``RQ`` (all), ``_th`` (things) and ``_st`` (stuff), per-class
        rows and the :class:`~segblocks.metrics.PanopticQualityResult`.

    Raises:
        FileNotFoundError: a JSON file or a PNG is missing.
        DatasetFormatError: a malformed file, a ground-truth image without prediction, unknown
            categories, PNG ids without segment info, maps of different sizes.
    """
    gt_path, pred_path = Path(gt_json), Path(pred_json)
    gt_dir = Path(gt_folder) if gt_folder is not None else _default_folder(gt_path)
    pred_dir = Path(pred_folder) if pred_folder is not None else _default_folder(pred_path)
    gt = read_coco_panoptic(
        gt_path.parent, json_file=gt_path, png_dir=gt_dir, images=False, check_areas=False
    )
    categories = {c.id: c.is_thing for c in gt.categories}
    names = {c.id: c.name for c in gt.categories}
    preds = read_coco_panoptic_results(pred_path, pred_dir, categories=gt.categories)
    counts = PQCounts.zeros(len(categories))
    for rec in gt:
        if rec.image_id not in preds:
            raise DatasetFormatError(f"{pred_path}: no prediction for the image with id {rec.image_id}")
        pred = preds[rec.image_id]
        if pred.panoptic.shape != rec.panoptic.shape:
            raise DatasetFormatError(
                f"{pred_dir / pred.file_name}: prediction of size {pred.panoptic.shape}, the ground truth "
                f"of image {rec.image_id} is {rec.panoptic.shape}"
            )
        gt_segs = [JsonSegment(s.id, s.category_id, s.iscrowd, s.area) for s in rec.segments]
        pred_segs = [JsonSegment(s.id, s.category_id) for s in pred.segments]
        counts.add(
            count_pair(rec.panoptic, gt_segs, pred.panoptic, pred_segs, categories, f"image {rec.image_id}")
        )
    result = summarise_counts(counts, categories)
    summary, n = pq_summary(result)
    logger.info("COCO panoptic: PQ %.4f over %d images", result.all.pq, len(gt))
    return EvaluationReport(
        task="coco_panoptic",
        summary=summary,
        counts={"images": len(gt), **n},
        rows=pq_rows(result, names),
        result=result,
    )
