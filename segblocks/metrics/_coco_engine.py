"""COCO-style average precision: greedy matching per image, 101-point interpolated precision.

Written from the published COCO evaluation protocol (the rules pycocotools' ``COCOeval`` applies),
shared by image mask AP and YouTube-VIS video AP, which differ only in how IoU and areas are taken:

* per image and category, detections are sorted by score (stable) and the top ``max_dets[-1]`` kept;
* for each IoU threshold a detection takes, among the ground truths not yet matched (crowd ones may
  be matched many times), the one with the highest IoU >= threshold (ties: the later one), preferring
  ground truths that are not ignored; a ground truth is ignored when it is crowd or its area lies
  outside the area range; detections matched to ignored ground truths, and unmatched detections
  whose area lies outside the range, are ignored;
* per category, area range and detection cap, detections of all images are ranked by score,
  precision is made monotone and read at the 101 recall thresholds ``0:0.01:1``;
* categories without (non-ignored) ground truth are left out of the means (-1 when nothing is left).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COCO_AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "RECALL_THRESHOLDS",
    "STAT_NAMES",
    "YTVIS_AREA_RANGES",
    "AccumulatedAP",
    "ImageCategoryEval",
    "accumulate",
    "evaluate_image_category",
    "summarize",
]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
COCO_AREA_RANGES: tuple[tuple[str, float, float], ...] = (
    ("all", 0.0, 1e5**2),
    ("small", 0.0, 32.0**2),
    ("medium", 32.0**2, 96.0**2),
    ("large", 96.0**2, 1e5**2),
)
YTVIS_AREA_RANGES: tuple[tuple[str, float, float], ...] = (
    ("all", 0.0, 1e5**2),
    ("small", 0.0, 128.0**2),
    ("medium", 128.0**2, 256.0**2),
    ("large", 256.0**2, 1e5**2),
)
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class ImageCategoryEval:
    """Matching result of one image (or video) and one category, for every area range.

    Attributes:
        image_id: the image id (sets the order in which images are concatenated).
        category_index: contiguous category index.
        scores: ``[D]`` float64 detection scores, decreasing.
        dt_matched: ``[A, T, D]`` bool, detection matched at threshold ``t`` in area range ``a``.
        dt_ignore: ``[A, T, D]`` bool, detection ignored.
        num_gt: ``[A]`` int64 number of ground truths that are not ignored.
    """

    image_id: int
    category_index: int
    scores: np.ndarray
    dt_matched: np.ndarray
    dt_ignore: np.ndarray
    num_gt: np.ndarray


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the last maximum of each row of ``values`` ``[T, G]``."""
    g = values.shape[1]
    return g - 1 - np.argmax(values[:, ::-1], axis=1)


def evaluate_image_category(
    *,
    image_id: int,
    category_index: int,
    ious: np.ndarray,
    scores: np.ndarray,
    dt_area: np.ndarray,
    gt_area: np.ndarray,
    gt_crowd: np.ndarray,
    area_ranges: Sequence[tuple[str, float, float]],
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    max_det: int = MAX_DETS[-1],
) -> ImageCategoryEval:
    """Match the detections of one image and category to its ground truths.

    Args:
        image_id: the image id.
        category_index: contiguous category index.
        ious: ``[D, G]`` IoU of each detection (in input order) with each ground truth.
        scores: ``[D]`` detection scores.
        dt_area: ``[D]`` detection areas.
        gt_area: ``[G]`` ground-truth areas.
        gt_crowd: ``[G]`` bool crowd flags.
        area_ranges: ``(name, low, high)`` area ranges, inclusive.
        iou_thresholds: ``[T]`` IoU thresholds.
        max_det: detections kept per image and category (highest scores).

    Returns:
        The per-area-range matching.
    """
    order = np.argsort(-scores, kind="mergesort")[:max_det]
    scores = scores[order].astype(np.float64)
    ious = ious[order]
    dt_area = dt_area[order]
    num_t, num_d, num_g = len(iou_thresholds), len(order), len(gt_area)
    thr = np.minimum(iou_thresholds, 1 - 1e-10)
    n_a = len(area_ranges)
    dt_matched = np.zeros((n_a, num_t, num_d), bool)
    dt_ignore = np.zeros((n_a, num_t, num_d), bool)
    num_gt = np.zeros(n_a, np.int64)
    for a, (_, lo, hi) in enumerate(area_ranges):
        gt_ig = gt_crowd | (gt_area < lo) | (gt_area > hi)
        num_gt[a] = int((~gt_ig).sum())
        if num_g and num_d:
            g_order = np.argsort(gt_ig, kind="mergesort")  # regular ground truths first
            ig_s, crowd_s, iou_s = gt_ig[g_order], gt_crowd[g_order], ious[:, g_order]
            taken = np.zeros((num_t, num_g), bool)
            rows = np.arange(num_t)
            for d in range(num_d):
                eligible = (~taken | crowd_s[None, :]) & (iou_s[d][None, :] >= thr[:, None])
                regular = eligible & ~ig_s[None, :]
                fallback = eligible & ig_s[None, :]
                use_regular = regular.any(axis=1)
                pick_reg = _last_argmax(np.where(regular, iou_s[d][None, :], -1.0))
                pick_ign = _last_argmax(np.where(fallback, iou_s[d][None, :], -1.0))
                pick = np.where(use_regular, pick_reg, pick_ign)
                hit = use_regular | fallback.any(axis=1)
                dt_matched[a, :, d] = hit
                dt_ignore[a, :, d] = hit & ig_s[pick]
                taken[rows[hit], pick[hit]] = True
        outside = (dt_area < lo) | (dt_area > hi)
        dt_ignore[a] |= ~dt_matched[a] & outside[None, :]
    return ImageCategoryEval(
        image_id=image_id,
        category_index=category_index,
        scores=scores,
        dt_matched=dt_matched,
        dt_ignore=dt_ignore,
        num_gt=num_gt,
    )


@dataclass
class AccumulatedAP:
    """Precision and recall tables.

    Attributes:
        precision: ``[T, R, K, A, M]`` interpolated precision, -1 where a category has no ground truth.
        recall: ``[T, K, A, M]`` final recall, -1 where a category has no ground truth.
    """

    precision: np.ndarray
    recall: np.ndarray


def accumulate(
    evals: Sequence[ImageCategoryEval],
    *,
    num_categories: int,
    num_area_ranges: int,
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    recall_thresholds: np.ndarray = RECALL_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
) -> AccumulatedAP:
    """Rank detections over images and read the precision / recall tables.

    Args:
        evals: per image and category matchings (any order; sorted here by image id, stably).
        num_categories: ``K``.
        num_area_ranges: ``A``.
        iou_thresholds: ``[T]``.
        recall_thresholds: ``[R]``.
        max_dets: ``[M]`` detection caps per image.

    Returns:
        The precision and recall tables.
    """
    n_t, n_r, n_m = len(iou_thresholds), len(recall_thresholds), len(max_dets)
    precision = -np.ones((n_t, n_r, num_categories, num_area_ranges, n_m))
    recall = -np.ones((n_t, num_categories, num_area_ranges, n_m))
    by_cat: list[list[ImageCategoryEval]] = [[] for _ in range(num_categories)]
    for e in sorted(evals, key=lambda e: e.image_id):
        by_cat[e.category_index].append(e)
    for k, cat_evals in enumerate(by_cat):
        if not cat_evals:
            continue
        for a in range(num_area_ranges):
            npig = int(sum(int(e.num_gt[a]) for e in cat_evals))
            if npig == 0:
                continue
            for m, cap in enumerate(max_dets):
                scores = np.concatenate([e.scores[:cap] for e in cat_evals])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([e.dt_matched[a, :, :cap] for e in cat_evals], axis=1)[:, order]
                ignore = np.concatenate([e.dt_ignore[a, :, :cap] for e in cat_evals], axis=1)[:, order]
                tps = np.cumsum(matched & ~ignore, axis=1).astype(np.float64)
                fps = np.cumsum(~matched & ~ignore, axis=1).astype(np.float64)
                nd = tps.shape[1]
                for t in range(n_t):
                    rc = tps[t] / npig
                    pr = tps[t] / (fps[t] + tps[t] + np.spacing(1))
                    recall[t, k, a, m] = rc[-1] if nd else 0.0
                    pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope
                    inds = np.searchsorted(rc, recall_thresholds, side="left")
                    q = np.zeros(n_r)
                    ok = inds < nd
                    q[ok] = pr[inds[ok]]
                    precision[t, :, k, a, m] = q
    return AccumulatedAP(precision=precision, recall=recall)


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(
    acc: AccumulatedAP,
    *,
    area_names: Sequence[str],
    iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    max_dets: Sequence[int] = MAX_DETS,
) -> dict[str, float]:
    """The twelve COCO numbers (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l); -1 when undefined."""
    a_all, a_s, a_m, a_l = (list(area_names).index(n) for n in ("all", "small", "medium", "large"))
    m_last = len(max_dets) - 1
    t50 = int(np.argmin(np.abs(iou_thresholds - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thresholds - 0.75)))
    p, r = acc.precision, acc.recall
    return {
        "AP": _mean_valid(p[:, :, :, a_all, m_last]),
        "AP50": _mean_valid(p[t50, :, :, a_all, m_last]),
        "AP75": _mean_valid(p[t75, :, :, a_all, m_last]),
        "APs": _mean_valid(p[:, :, :, a_s, m_last]),
        "APm": _mean_valid(p[:, :, :, a_m, m_last]),
        "APl": _mean_valid(p[:, :, :, a_l, m_last]),
        "AR1": _mean_valid(r[:, :, a_all, 0]),
        "AR10": _mean_valid(r[:, :, a_all, min(1, m_last)]),
        "AR100": _mean_valid(r[:, :, a_all, m_last]),
        "ARs": _mean_valid(r[:, :, a_s, m_last]),
        "ARm": _mean_valid(r[:, :, a_m, m_last]),
        "ARl": _mean_valid(r[:, :, a_l, m_last]),
    }


def per_category_ap(acc: AccumulatedAP, *, area_index: int = 0) -> np.ndarray:
    """``[K]`` AP@[.5:.95] of each category (all areas, largest cap); -1 without ground truth."""
    p = acc.precision[:, :, :, area_index, -1]
    out = np.empty(p.shape[2])
    for k in range(p.shape[2]):
        out[k] = _mean_valid(p[:, :, k])
    return out
