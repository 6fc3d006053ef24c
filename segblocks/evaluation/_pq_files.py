"""The panopticapi / VIPSeg counting rules on one pair of maps, with segment lists read from JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from segblocks.metrics._panoptic_core import PQCounts, index_map, pq_counts
from segblocks.metrics.panoptic_quality import PanopticQualityResult, segment_table
from segblocks.structures import SegmentInfo

__all__ = ["JsonSegment", "count_pair", "pq_rows", "pq_summary"]


@dataclass(frozen=True)
class JsonSegment:
    """A segment as listed in a JSON file: id, category, crowd flag and stated area (None: unknown)."""

    id: int
    category_id: int
    iscrowd: bool = False
    area: float | None = None


def count_pair(
    gt_map: np.ndarray,
    gt_segments: Sequence[JsonSegment],
    pred_map: np.ndarray,
    pred_segments: Sequence[JsonSegment],
    categories: Mapping[int, bool],
    where: str,
) -> PQCounts:
    """TP / FP / FN and IoU sums of one ground-truth / prediction pair (an image or a window of frames).

    Follows panopticapi: ground-truth areas are the JSON's ``area`` (pixel counts where absent),
    prediction areas are pixel counts; VOID (0) pixels leave the union; a crowd ground truth is never
    matched nor missed; an unmatched prediction lying more than half on VOID plus the last listed
    crowd segment of its category is not a false positive.

    Args:
        gt_map: ground-truth segment ids (``[H, W]`` or ``[K, H, W]``), 0 = VOID.
        gt_segments: the ground-truth segments in JSON order (ids unique).
        pred_map: predicted segment ids, same shape.
        pred_segments: the predicted segments.
        categories: ``{category_id: is_thing}``.
        where: names the pair in error messages.
    """
    index = {cid: k for k, cid in enumerate(categories)}

    def infos(segs: Sequence[JsonSegment]) -> list[SegmentInfo]:
        return [SegmentInfo(s.id, s.category_id, categories.get(s.category_id, False)) for s in segs]

    crowd = [s.id for s in gt_segments if s.iscrowd]
    gt = segment_table(f"{where}: ground truth", infos(gt_segments), categories, index, crowd)
    pred = segment_table(f"{where}: prediction", infos(pred_segments), categories, index)
    gt_index = index_map(f"{where}: ground-truth PNG", gt_map, gt.ids)
    pred_index = index_map(f"{where}: prediction PNG", pred_map, pred.ids)
    pixels = np.bincount(gt_index.reshape(-1), minlength=len(gt.ids) + 1)[1:].astype(np.float64)
    stated = {s.id: s.area for s in gt_segments}
    gt_area = np.array(
        [pixels[k] if stated[int(i)] is None else stated[int(i)] for k, i in enumerate(gt.ids)], np.float64
    )
    last_crowd: dict[int, int] = {}
    for s in gt_segments:
        if s.iscrowd:
            last_crowd[s.category_id] = s.id
    fp_crowd = np.isin(gt.ids, list(last_crowd.values()))
    return pq_counts(gt_index, gt, pred_index, pred, len(categories), gt_area=gt_area, fp_crowd=fp_crowd)


def pq_summary(result: PanopticQualityResult) -> tuple[dict[str, float], dict[str, int]]:
    """PQ / SQ / RQ of all, thing and stuff categories, and the number of categories in each average."""
    summary: dict[str, float] = {}
    counts: dict[str, int] = {}
    for suffix, s in (("", result.all), ("_th", result.things), ("_st", result.stuff)):
        summary.update({f"PQ{suffix}": s.pq, f"SQ{suffix}": s.sq, f"RQ{suffix}": s.rq})
        counts[f"n{suffix or '_all'}"] = s.n
    return summary, counts


def pq_rows(result: PanopticQualityResult, names: Mapping[int, str]) -> dict[str, dict[str, float]]:
    """Per-class PQ / SQ / RQ keyed by category name."""
    return {names[cid]: {"PQ": s.pq, "SQ": s.sq, "RQ": s.rq} for cid, s in result.per_class.items()}
