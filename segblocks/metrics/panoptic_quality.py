"""Panoptic quality (PQ = SQ x RQ) with the COCO panoptic rules, streaming and mergeable."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from segblocks.metrics._arrays import check_array, to_numpy
from segblocks.metrics._categories import parse_categories
from segblocks.metrics._panoptic_core import PQCounts, SegmentTable, index_map, pq_counts
from segblocks.metrics.base import Metric
from segblocks.structures import PanopticResult

__all__ = ["PQClassStats", "PQSummary", "PanopticQuality", "PanopticQualityResult"]


@dataclass(frozen=True)
class PQClassStats:
    """PQ statistics of one category.

    Attributes:
        pq: panoptic quality, ``iou / (tp + fp/2 + fn/2)``.
        sq: segmentation quality, ``iou / tp`` (0 without true positives).
        rq: recognition quality, ``tp / (tp + fp/2 + fn/2)``.
        iou: sum of the IoUs of the matched pairs.
        tp: true positives.
        fp: false positives.
        fn: false negatives.
    """

    pq: float
    sq: float
    rq: float
    iou: float
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class PQSummary:
    """PQ, SQ and RQ averaged over the ``n`` categories that occur (``tp + fp + fn > 0``).

    The averages are NaN when ``n`` is 0.
    """

    pq: float
    sq: float
    rq: float
    n: int


@dataclass(frozen=True)
class PanopticQualityResult:
    """Result of :class:`PanopticQuality`.

    Attributes:
        all: averages over every category.
        things: averages over thing categories.
        stuff: averages over stuff categories.
        per_class: statistics of every configured category, keyed by category id.
    """

    all: PQSummary
    things: PQSummary
    stuff: PQSummary
    per_class: dict[int, PQClassStats]


def summarise_counts(counts: PQCounts, categories: Mapping[int, bool]) -> PanopticQualityResult:
    """Turn per-category counts into PQ / SQ / RQ per class and averaged (panopticapi's rules).

    Args:
        counts: statistics indexed like ``categories``.
        categories: ``{category_id: is_thing}`` in index order.

    Returns:
        The per-class and averaged results.
    """
    per_class: dict[int, PQClassStats] = {}
    for k, (cid, _) in enumerate(categories.items()):
        iou, tp, fp, fn = float(counts.iou[k]), int(counts.tp[k]), int(counts.fp[k]), int(counts.fn[k])
        denom = tp + 0.5 * fp + 0.5 * fn
        per_class[cid] = PQClassStats(
            pq=iou / denom if denom else 0.0,
            sq=iou / tp if tp else 0.0,
            rq=tp / denom if denom else 0.0,
            iou=iou,
            tp=tp,
            fp=fp,
            fn=fn,
        )

    def average(keep: bool | None) -> PQSummary:
        rows = [
            s
            for cid, s in per_class.items()
            if (keep is None or categories[cid] == keep) and s.tp + s.fp + s.fn > 0
        ]
        if not rows:
            return PQSummary(pq=math.nan, sq=math.nan, rq=math.nan, n=0)
        n = len(rows)
        return PQSummary(
            pq=sum(s.pq for s in rows) / n,
            sq=sum(s.sq for s in rows) / n,
            rq=sum(s.rq for s in rows) / n,
            n=n,
        )

    return PanopticQualityResult(
        all=average(None), things=average(True), stuff=average(False), per_class=per_class
    )


def segment_table(
    name: str,
    segments: Iterable[Any],
    categories: Mapping[int, bool],
    category_index: Mapping[int, int],
    crowd_ids: Collection[int] = (),
) -> SegmentTable:
    """Validate segments (ids, categories, thing flags) and sort them into a :class:`SegmentTable`.

    Args:
        name: the argument name used in error messages.
        segments: objects with ``id``, ``category_id`` and ``is_thing`` (e.g. ``SegmentInfo``).
        categories: ``{category_id: is_thing}``.
        category_index: ``{category_id: contiguous index}``.
        crowd_ids: ids of crowd segments (ground truth only).

    Returns:
        The segments sorted by id.

    Raises:
        ValueError: unknown category, a thing flag that disagrees with the category, a duplicate id,
            or a crowd id that is not a segment.
    """
    rows = sorted((int(s.id), int(s.category_id), bool(s.is_thing)) for s in segments)
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: duplicate segment ids in {ids}")
    for sid, cid, thing in rows:
        if cid not in categories:
            raise ValueError(
                f"{name}: segment {sid} has unknown category_id {cid}; known ids: {sorted(categories)}"
            )
        if thing != categories[cid]:
            raise ValueError(
                f"{name}: segment {sid} says is_thing={thing} but category {cid} is "
                f"{'a thing' if categories[cid] else 'stuff'}"
            )
    crowd = set(int(c) for c in crowd_ids)
    unknown = crowd - set(ids)
    if unknown:
        raise ValueError(f"{name}: crowd ids {sorted(unknown)} are not segments of the map")
    return SegmentTable(
        ids=np.asarray(ids, np.int64),
        category_index=np.asarray([category_index[r[1]] for r in rows], np.int64),
        crowd=np.asarray([r[0] in crowd for r in rows], bool),
    )


def panoptic_arrays(name: str, value: object) -> tuple[np.ndarray, list[Any]]:
    """Return the numpy segment map and the segment list of a :class:`PanopticResult`.

    Raises:
        TypeError: ``value`` is not a ``PanopticResult`` or its map is not an integer array.
    """
    if not isinstance(value, PanopticResult):
        raise TypeError(f"{name}: expected a PanopticResult, got {type(value).__name__}")
    seg_map = to_numpy(f"{name}.segment_map", value.segment_map)
    check_array(f"{name}.segment_map", seg_map, 2, "[H, W]", "integer")
    return seg_map, list(value.segments)


class PanopticQuality(Metric[PanopticQualityResult]):
    """Panoptic quality, segmentation quality and recognition quality (COCO panoptic rules).

    Matches each image's predicted segments to ground-truth segments of the same category at
    IoU > 0.5. VOID (id 0) ground-truth pixels are left out of the IoU; crowd ground-truth
    segments are neither matched nor missed; a prediction lying mostly (> 50%) in VOID or in a crowd
    region of its category is not a false positive. Statistics are summed over the dataset, then
    PQ / SQ / RQ are computed per category and averaged over the categories that occur.

    Example:
        >>> metric = PanopticQuality(categories={0: True, 1: False})
        >>> metric.update(prediction, ground_truth, target_crowd_ids=[7])  # doctest: +SKIP
        >>> metric.compute().all.pq  # doctest: +SKIP

    Args:
        categories: ``{category_id: is_thing}`` or objects with ``id`` and ``is_thing``.
    """

    def __init__(self, *, categories: Mapping[int, bool] | Iterable[Any]) -> None:
        self.categories = parse_categories("categories", categories)
        self._index = {cid: k for k, cid in enumerate(self.categories)}
        super().__init__()

    def reset(self) -> None:
        """Forget every update."""
        self._counts = PQCounts.zeros(len(self.categories))
        self.num_images = 0

    def config(self) -> tuple[Any, ...]:
        """The category list (metrics must agree on it to be merged)."""
        return (tuple(self.categories.items()),)

    def update(
        self, pred: PanopticResult, target: PanopticResult, *, target_crowd_ids: Collection[int] = ()
    ) -> None:
        """Add one image.

        Args:
            pred: predicted segment map ``[H, W]`` and its segments.
            target: ground-truth segment map ``[H, W]`` (0 = VOID) and its segments.
            target_crowd_ids: ids of the ground-truth segments that are crowd regions.

        Raises:
            TypeError: an input is not a ``PanopticResult`` or its map is not integer.
            ValueError: the maps differ in size, a map id has no segment info, a category is unknown
                or a segment's thing flag disagrees with its category.
        """
        pred_map, pred_segments = panoptic_arrays("pred", pred)
        gt_map, gt_segments = panoptic_arrays("target", target)
        if pred_map.shape != gt_map.shape:
            raise ValueError(
                f"pred.segment_map: expected the target's shape {tuple(gt_map.shape)}, "
                f"got {tuple(pred_map.shape)}"
            )
        gt = segment_table("target.segments", gt_segments, self.categories, self._index, target_crowd_ids)
        pr = segment_table("pred.segments", pred_segments, self.categories, self._index)
        gt_index = index_map("target.segment_map", gt_map, gt.ids)
        pred_index = index_map("pred.segment_map", pred_map, pr.ids)
        self._counts.add(pq_counts(gt_index, gt, pred_index, pr, len(self.categories)))
        self.num_images += 1

    def get_state(self) -> dict[str, Any]:
        """The summed per-category statistics and the image count."""
        c = self._counts
        return {
            "iou": c.iou.copy(),
            "tp": c.tp.copy(),
            "fp": c.fp.copy(),
            "fn": c.fn.copy(),
            "n": self.num_images,
        }

    def merge_state(self, state: dict[str, Any]) -> None:
        """Add another metric's state.

        Args:
            state: a dictionary from :meth:`get_state` of a metric with the same settings.
        """
        self._counts.add(PQCounts(iou=state["iou"], tp=state["tp"], fp=state["fp"], fn=state["fn"]))
        self.num_images += int(state["n"])

    def compute(self) -> PanopticQualityResult:
        """PQ / SQ / RQ for all, thing and stuff categories and per class."""
        return summarise_counts(self._counts, self.categories)
