"""COCO instance-segmentation and YouTube-VIS AP from a ground-truth JSON and a results JSON alone."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from segblocks.data.formats import (
    DatasetFormatError,
    RecordDataset,
    group_youtube_vis_results,
    read_coco_instances,
    read_coco_results,
    read_youtube_vis,
)
from segblocks.evaluation.report import EvaluationReport
from segblocks.metrics import MaskAP, VideoAP
from segblocks.metrics._coco_engine import STAT_NAMES
from segblocks.structures import InstanceResult, Targets

__all__ = ["evaluate_coco_instances", "evaluate_youtube_vis"]

logger = logging.getLogger(__name__)


def _report(
    task: str, metric: MaskAP | VideoAP, gt: RecordDataset[Any], extra: list[int], units: str, where: str
) -> EvaluationReport:
    """The report of a COCO-style AP evaluation; results for ``extra`` ids not in the ground truth fail."""
    if extra:  # COCO.loadRes: "Results do not correspond to current coco set"
        raise DatasetFormatError(
            f"{where}: results for {units} {sorted(extra)[:10]} that are not in the ground truth"
        )
    result = metric.compute()
    names = {c.id: c.name for c in gt.categories}
    logger.info("%s: AP %.4f over %d %s", task, result.ap, len(gt), units)
    return EvaluationReport(
        task=task,
        summary=dict(zip(STAT_NAMES, result.as_list())),
        counts={units: len(gt), "categories": len(names)},
        rows={names[cid]: {"AP": ap} for cid, ap in result.per_class.items()},
        result=result,
    )


def evaluate_coco_instances(gt_json: str | Path, results_json: str | Path) -> EvaluationReport:
    """COCO mask AP (``COCOeval(..., "segm")``'s twelve numbers) of a results file; no image is read.

    As COCOeval: ground-truth areas are the JSON's ``area``, detection areas their mask pixel
    counts; crowd ground truths are ignored regions; at most 100 detections per image and
    category; every ground-truth image counts (detections of an image without ground truth are
    false positives).

    Args:
        gt_json: the COCO instances JSON (``images``, ``annotations``, ``categories``).
        results_json: a list of ``{image_id, category_id, segmentation (compressed RLE), score}``.

    Returns:
        A report with ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``, ``AR1``, ``AR10``,
        ``AR100``, ``ARs``, ``ARm``, ``ARl`` (-1 where undefined), per-class AP, the
        :class:`~segblocks.metrics.APResult`.

    Raises:
        FileNotFoundError: a file is missing.
        DatasetFormatError: malformed files, results for images not in the ground truth, unknown
            categories, non-finite scores, masks of another size than their image.
    """
    gt_path = Path(gt_json)
    gt = read_coco_instances(gt_path.parent, json_file=gt_path, images=False)
    results = read_coco_results(results_json, categories=gt.categories)
    metric = MaskAP(categories=[c.id for c in gt.categories])
    seen: set[int] = set()
    for rec in gt:
        seen.add(rec.image_id)
        if rec.image_id in results:
            if results.size_of(rec.image_id) != rec.size:
                raise DatasetFormatError(
                    f"{results_json}: masks of image {rec.image_id} are {results.size_of(rec.image_id)}, "
                    f"the image is {rec.size}"
                )
            pred = results[rec.image_id].to_instance_result()
        else:
            h, w = rec.size
            empty = torch.zeros(0, dtype=torch.int64)
            pred = InstanceResult(
                masks=torch.zeros((0, h, w), dtype=torch.bool), labels=empty, scores=empty.double()
            )
        target = Targets(masks=torch.from_numpy(rec.masks), labels=torch.from_numpy(rec.category_ids))
        assert rec.areas is not None
        metric.update(
            pred,
            target,
            target_crowd=torch.from_numpy(rec.iscrowd),
            target_areas=torch.from_numpy(rec.areas),
            image_id=rec.image_id,
        )
    return _report(
        "coco_instances", metric, gt, [i for i in results if i not in seen], "images", str(results_json)
    )


def evaluate_youtube_vis(gt_json: str | Path, results_json: str | Path) -> EvaluationReport:
    """YouTube-VIS AP (the twelve numbers of its COCO-style evaluation) of a results file; no frame is read.

    As the YouTube-VIS evaluation: IoU over whole sequences; ground-truth areas are the mean of
    each track's non-null, non-zero JSON ``areas`` (mask averages where the JSON has none), area
    ranges small < 128², medium < 256², large; crowd tracks are ignored.

    Args:
        gt_json: the YouTube-VIS JSON (``videos``, ``annotations``, ``categories``).
        results_json: a list of ``{video_id, category_id, segmentations, score}``.

    Returns:
        A report with the twelve numbers, per-class AP and the :class:`~segblocks.metrics.APResult`.

    Raises:
        FileNotFoundError: a file is missing.
        DatasetFormatError: malformed files, results for unknown videos or categories, non-finite
            scores, masks of the wrong size or frame count.
    """
    gt_path = Path(gt_json)
    gt: RecordDataset[Any] = read_youtube_vis(gt_path.parent, json_file=gt_path, frames=False)
    results = group_youtube_vis_results(results_json, categories=gt.categories)
    metric = VideoAP(categories=[c.id for c in gt.categories])
    seen: set[int] = set()
    for video in gt:
        seen.add(video.video_id)
        pred = results.for_video(video)
        metric.update(
            pred.to_video_instances(),
            video.to_video_instances(),
            video_id=video.video_id,
            target_areas=video.areas if video.areas is not None else None,
        )
    extra = [v for v in results.video_ids if v not in seen]
    return _report("youtube_vis", metric, gt, extra, "videos", str(results_json))
