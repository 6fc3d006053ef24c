"""The segment matching at the heart of PQ and VPQ (COCO panoptic rules), on numpy arrays.

One call compares a ground-truth and a predicted segment map of any shape (an image ``[H, W]`` or a
window of frames ``[K, H, W]``) and returns per-category IoU sums and TP / FP / FN counts:

* id ``0`` is VOID in both maps; VOID ground-truth pixels are removed from a prediction's union;
* a prediction matches a ground-truth segment of the same category when IoU > 0.5 (unique);
* ground-truth crowd segments are never matched nor counted as false negatives;
* an unmatched prediction whose area lies more than half in VOID or in crowd regions of its own
  category is not a false positive.

Segments listed with zero area are ignored (they own no pixel, so they can be neither matched nor
counted). Where panopticapi keeps one crowd region per category, the union of all crowd segments
of the category is used (identical when a category has at most one crowd region, as in COCO).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PQCounts", "SegmentTable", "index_map", "pq_counts"]

# Segment maps whose largest id is below this are indexed with a lookup table, else by binary search.
_LUT_LIMIT = 1 << 20


@dataclass
class SegmentTable:
    """The segments of one map, sorted by id.

    Attributes:
        ids: ``[S]`` int64 segment ids, increasing, all positive.
        category_index: ``[S]`` int64 contiguous category index of each segment.
        crowd: ``[S]`` bool crowd flag (always False for predictions).
    """

    ids: np.ndarray
    category_index: np.ndarray
    crowd: np.ndarray


@dataclass
class PQCounts:
    """Per-category PQ statistics, ``K`` categories.

    Attributes:
        iou: ``[K]`` float64 sum of the IoUs of matched pairs.
        tp: ``[K]`` int64 true positives.
        fp: ``[K]`` int64 false positives.
        fn: ``[K]`` int64 false negatives.
    """

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, num_categories: int) -> PQCounts:
        """Return all-zero statistics for ``num_categories`` categories."""
        return cls(
            iou=np.zeros(num_categories, np.float64),
            tp=np.zeros(num_categories, np.int64),
            fp=np.zeros(num_categories, np.int64),
            fn=np.zeros(num_categories, np.int64),
        )

    def add(self, other: PQCounts) -> None:
        """Add ``other``'s statistics in place."""
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn


def index_map(name: str, seg_map: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Replace segment ids by their 1-based position in ``ids`` (``0`` stays VOID).

    Args:
        name: the argument name used in error messages.
        seg_map: integer segment map of any shape.
        ids: ``[S]`` sorted, unique, positive segment ids.

    Returns:
        An int64 array of ``seg_map``'s shape with values in ``0..S``.

    Raises:
        ValueError: the map holds a negative id or an id that is not in ``ids``.
    """
    flat = seg_map.reshape(-1)
    n = len(ids)
    if flat.size == 0:
        return np.zeros(seg_map.shape, np.int64)
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0:
        raise ValueError(f"{name}: segment ids must be >= 0 (0 is VOID), got {lo}")
    # Unknown ids go to the extra index n + 1, detected below with one max() instead of a mask.
    if hi < _LUT_LIMIT:
        lut = np.full(hi + 1, n + 1, np.int64)
        lut[0] = 0
        known = ids[ids <= hi]
        lut[known] = np.searchsorted(ids, known) + 1
        out = np.take(lut, flat)
    else:
        pos = np.searchsorted(ids, flat)
        found = np.take(ids, np.minimum(pos, max(n - 1, 0))) == flat if n else np.zeros(flat.shape, bool)
        out = np.where(found, pos + 1, np.where(flat == 0, 0, n + 1))
    if int(out.max()) == n + 1:
        missing = np.unique(flat[out == n + 1])
        shown = ", ".join(str(int(v)) for v in missing[:10])
        more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
        raise ValueError(f"{name}: segment ids {shown}{more} appear in the map but have no segment info")
    return out.reshape(seg_map.shape)


def pq_counts(
    gt_index: np.ndarray,
    gt: SegmentTable,
    pred_index: np.ndarray,
    pred: SegmentTable,
    num_categories: int,
    *,
    gt_area: np.ndarray | None = None,
    fp_crowd: np.ndarray | None = None,
) -> PQCounts:
    """Match the segments of two index maps and count per-category TP / FP / FN and IoU sums.

    Args:
        gt_index: ground-truth map from :func:`index_map` (values ``0..G``), any shape.
        gt: the ``G`` ground-truth segments.
        pred_index: predicted map from :func:`index_map` (values ``0..P``), same shape.
        pred: the ``P`` predicted segments.
        num_categories: ``K``, the number of contiguous category indices.
        gt_area: ``[G]`` ground-truth areas to use in the IoU's union (panopticapi takes them from
            the JSON's ``area``); default: the pixel counts of the map.
        fp_crowd: ``[G]`` bool, the crowd segments whose pixels excuse a false positive of their
            category (panopticapi: the last crowd segment listed per category); default: every
            crowd segment.

    Returns:
        The statistics of this map pair.
    """
    n_gt, n_pred = len(gt.ids), len(pred.ids)
    joint = gt_index.reshape(-1) * (n_pred + 1)
    joint += pred_index.reshape(-1)
    inter = np.bincount(joint, minlength=(n_gt + 1) * (n_pred + 1)).reshape(n_gt + 1, n_pred + 1)
    pixel_area = inter.sum(axis=1)[1:]
    gt_area = pixel_area if gt_area is None else np.asarray(gt_area, np.float64)
    pred_area = inter.sum(axis=0)[1:]
    pair = inter[1:, 1:]  # [G, P] intersections of real segments
    pred_in_void = inter[0, 1:]  # [P] predicted pixels lying on VOID ground truth

    counts = PQCounts.zeros(num_categories)
    same_cat = gt.category_index[:, None] == pred.category_index[None, :]
    candidate = (pair > 0) & same_cat & ~gt.crowd[:, None]
    union = pred_area[None, :] + gt_area[:, None] - pair - pred_in_void[None, :]
    iou = np.where(candidate, pair / np.maximum(union, 1), 0.0)
    matched = candidate & (iou > 0.5)  # IoU > 0.5 makes every match unique
    g_idx, p_idx = np.nonzero(matched)
    np.add.at(counts.iou, gt.category_index[g_idx], iou[g_idx, p_idx])
    np.add.at(counts.tp, gt.category_index[g_idx], 1)

    gt_matched = matched.any(axis=1)
    fn = ~gt_matched & ~gt.crowd & (pixel_area > 0)
    np.add.at(counts.fn, gt.category_index[fn], 1)

    pred_matched = matched.any(axis=0)
    excusing = gt.crowd if fp_crowd is None else gt.crowd & fp_crowd
    crowd_same_cat = same_cat & excusing[:, None]
    ignored_area = pred_in_void + (pair * crowd_same_cat).sum(axis=0)
    fp = ~pred_matched & (pred_area > 0)
    fp &= ~(ignored_area > 0.5 * pred_area)
    np.add.at(counts.fp, pred.category_index[fp], 1)
    return counts
