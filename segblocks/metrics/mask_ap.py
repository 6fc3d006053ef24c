"""COCO mask average precision (AP, AP50, AP75, APs/m/l and the AR numbers), streaming."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from segblocks.metrics._coco_engine import (
    COCO_AREA_RANGES,
    MAX_DETS,
    ImageCategoryEval,
    accumulate,
    evaluate_image_category,
    per_category_ap,
    summarize,
)
from segblocks.metrics.base import Metric
from segblocks.structures import InstanceResult, Targets

__all__ = ["APResult", "MaskAP", "mask_iou"]


@dataclass(frozen=True)
class APResult:
    """COCO-style detection numbers (fractions in ``[0, 1]``; -1 when undefined, as in COCOeval).

    Attributes:
        ap: AP averaged over IoU 0.50:0.05:0.95 (all areas, largest detection cap).
        ap50: AP at IoU 0.5.
        ap75: AP at IoU 0.75.
        aps: AP of small objects.
        apm: AP of medium objects.
        apl: AP of large objects.
        ar1: recall with 1 detection per image.
        ar10: recall with 10 detections per image.
        ar100: recall with 100 detections per image.
        ars: recall of small objects.
        arm: recall of medium objects.
        arl: recall of large objects.
        per_class: AP of each category id (-1 without ground truth).
    """

    ap: float
    ap50: float
    ap75: float
    aps: float
    apm: float
    apl: float
    ar1: float
    ar10: float
    ar100: float
    ars: float
    arm: float
    arl: float
    per_class: dict[int, float]

    def as_list(self) -> list[float]:
        """The twelve numbers in COCOeval's ``stats`` order."""
        return [float(getattr(self, f.name)) for f in fields(self) if f.name != "per_class"]


def parse_category_ids(name: str, categories: Iterable[Any]) -> list[int]:
    """Return sorted unique category ids from ints or objects with an ``id`` attribute.

    Raises:
        TypeError: an entry is neither an int nor has an int ``id``.
        ValueError: empty list or repeated ids.
    """
    ids: list[int] = []
    for c in categories:
        cid = c if isinstance(c, int) and not isinstance(c, bool) else getattr(c, "id", None)
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise TypeError(f"{name}: expected ints or objects with an int `id`, got {c!r}")
        ids.append(cid)
    if not ids:
        raise ValueError(f"{name}: expected at least one category")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: repeated category ids in {ids}")
    return sorted(ids)


def mask_iou(dt: Tensor, gt: Tensor, gt_crowd: Tensor | None = None) -> np.ndarray:
    """IoU between two sets of binary masks of any (equal) spatial shape.

    For a crowd ground truth the IoU is ``|dt & gt| / |dt|`` (the COCO rule). An empty union gives 0.

    Args:
        dt: ``[D, ...]`` bool detection masks.
        gt: ``[G, ...]`` bool ground-truth masks.
        gt_crowd: ``[G]`` bool crowd flags (default none).

    Returns:
        ``[D, G]`` float64 IoU.
    """
    d = dt.flatten(1)
    g = gt.flatten(1).to(d.device)
    if d.shape[0] == 0 or g.shape[0] == 0:
        return np.zeros((d.shape[0], g.shape[0]))
    # Counts are exact in float32 below 2**24 pixels; beyond, use float64.
    ftype = torch.float32 if d.shape[1] < (1 << 24) else torch.float64
    inter = (d.to(ftype) @ g.to(ftype).T).double()
    d_area = d.sum(1).double()
    g_area = g.sum(1).double()
    union = d_area[:, None] + g_area[None, :] - inter
    if gt_crowd is not None:
        union = torch.where(gt_crowd.to(d.device)[None, :], d_area[:, None].expand_as(union), union)
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))
    return iou.cpu().numpy()


class COCOStyleAP(Metric[APResult]):
    """Shared machinery of :class:`MaskAP` and the video AP: per-image matching, then accumulation."""

    def __init__(
        self,
        *,
        categories: Iterable[Any],
        area_ranges: Sequence[tuple[str, float, float]],
        max_dets: Sequence[int] = MAX_DETS,
    ) -> None:
        self.category_ids = parse_category_ids("categories", categories)
        self._index = {cid: k for k, cid in enumerate(self.category_ids)}
        names = [r[0] for r in area_ranges]
        if names[:1] != ["all"] or not {"small", "medium", "large"} <= set(names):
            raise ValueError(f"area_ranges: expected 'all' first and 'small', 'medium', 'large', got {names}")
        self.area_ranges = tuple((str(n), float(lo), float(hi)) for n, lo, hi in area_ranges)
        if not max_dets or list(max_dets) != sorted(max_dets) or min(max_dets) <= 0:
            raise ValueError(f"max_dets: expected increasing positive caps, got {list(max_dets)}")
        self.max_dets = tuple(int(m) for m in max_dets)
        super().__init__()

    def reset(self) -> None:
        """Forget every update."""
        self._evals: list[ImageCategoryEval] = []
        self._next_id = 0

    def config(self) -> tuple[Any, ...]:
        """Categories, area ranges and detection caps."""
        return (tuple(self.category_ids), self.area_ranges, self.max_dets)

    def _labels(self, name: str, labels: Tensor) -> np.ndarray:
        arr = labels.detach().cpu().numpy().astype(np.int64)
        unknown = sorted(set(arr.tolist()) - set(self._index))
        if unknown:
            raise ValueError(f"{name}: unknown category ids {unknown}; known ids: {self.category_ids}")
        return np.asarray([self._index[int(v)] for v in arr], np.int64)

    def _add(
        self,
        *,
        image_id: int | None,
        ious: np.ndarray,
        dt_cat: np.ndarray,
        scores: np.ndarray,
        dt_area: np.ndarray,
        gt_cat: np.ndarray,
        gt_area: np.ndarray,
        gt_crowd: np.ndarray,
    ) -> None:
        if not np.isfinite(scores).all():  # a NaN would sort first and count as the best detection
            raise ValueError("pred.scores: expected finite scores, got NaN or infinity")
        if not np.isfinite(gt_area).all() or (gt_area < 0).any():
            raise ValueError("target_areas: expected finite non-negative areas")
        if image_id is None:
            image_id = self._next_id
        self._next_id = max(self._next_id, int(image_id)) + 1
        for k in sorted(set(dt_cat.tolist()) | set(gt_cat.tolist())):
            di, gi = np.nonzero(dt_cat == k)[0], np.nonzero(gt_cat == k)[0]
            self._evals.append(
                evaluate_image_category(
                    image_id=int(image_id),
                    category_index=int(k),
                    ious=ious[np.ix_(di, gi)],
                    scores=scores[di],
                    dt_area=dt_area[di],
                    gt_area=gt_area[gi],
                    gt_crowd=gt_crowd[gi],
                    area_ranges=self.area_ranges,
                    max_det=self.max_dets[-1],
                )
            )

    @staticmethod
    def _flags(name: str, value: Tensor | None, n: int) -> np.ndarray:
        if value is None:
            return np.zeros(n, bool)
        if not isinstance(value, Tensor) or value.dtype != torch.bool:
            raise TypeError(
                f"{name}: expected a bool tensor [G={n}], got {getattr(value, 'dtype', type(value))}"
            )
        if tuple(value.shape) != (n,):
            raise ValueError(f"{name}: expected shape ({n},) [G], got {tuple(value.shape)}")
        return value.cpu().numpy()

    @staticmethod
    def _areas(name: str, value: Tensor | np.ndarray | None, n: int) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, np.ndarray) and value.dtype != np.bool_:
            value = torch.from_numpy(value)
        if not isinstance(value, Tensor) or value.dtype == torch.bool:
            raise TypeError(
                f"{name}: expected a numeric tensor [G={n}], got {getattr(value, 'dtype', type(value))}"
            )
        if tuple(value.shape) != (n,):
            raise ValueError(f"{name}: expected shape ({n},) [G], got {tuple(value.shape)}")
        return value.detach().cpu().double().numpy()

    def get_state(self) -> dict[str, Any]:
        """The per image and category matchings."""
        return {"evals": list(self._evals), "next_id": self._next_id}

    def merge_state(self, state: dict[str, Any]) -> None:
        """Append another metric's matchings.

        Args:
            state: a dictionary from :meth:`get_state` of a metric with the same settings.
        """
        self._evals.extend(state["evals"])
        self._next_id = max(self._next_id, int(state["next_id"]))

    def compute(self) -> APResult:
        """AP / AR numbers over every image seen."""
        acc = accumulate(
            self._evals,
            num_categories=len(self.category_ids),
            num_area_ranges=len(self.area_ranges),
            max_dets=self.max_dets,
        )
        stats = summarize(acc, area_names=[r[0] for r in self.area_ranges], max_dets=self.max_dets)
        per = per_category_ap(acc)
        return APResult(
            **{name.lower(): value for name, value in stats.items()},
            per_class={cid: float(per[k]) for k, cid in enumerate(self.category_ids)},
        )


class MaskAP(COCOStyleAP):
    """COCO instance-segmentation AP (``iouType="segm"``), computed per image as images stream in.

    Detections and ground truths are compared by mask IoU; crowd ground truths use
    ``|dt & gt| / |dt|``. Ground-truth areas default to mask pixel counts (pass ``target_areas`` to
    use, e.g., COCO's annotated areas). Give ``image_id`` to reproduce COCOeval's tie-breaking between
    equal scores across images exactly (images are ranked by id).

    Example:
        >>> metric = MaskAP(categories=[1, 2, 3])
        >>> metric.update(prediction, targets, image_id=0)  # doctest: +SKIP
        >>> metric.compute().ap  # doctest: +SKIP

    Args:
        categories: category ids (ints or objects with an ``id``).
        area_ranges: ``(name, low, high)`` ranges named all / small / medium / large.
        max_dets: detection caps per image, increasing (AP uses the last).
    """

    def __init__(
        self,
        *,
        categories: Iterable[Any],
        area_ranges: Sequence[tuple[str, float, float]] = COCO_AREA_RANGES,
        max_dets: Sequence[int] = MAX_DETS,
    ) -> None:
        super().__init__(categories=categories, area_ranges=area_ranges, max_dets=max_dets)

    def update(
        self,
        pred: InstanceResult,
        target: Targets,
        *,
        target_crowd: Tensor | None = None,
        target_areas: Tensor | None = None,
        image_id: int | None = None,
    ) -> None:
        """Add one image.

        Args:
            pred: detections: masks ``[D, H, W]`` bool, labels ``[D]``, scores ``[D]``.
            target: ground truth: masks ``[G, H, W]`` bool and labels ``[G]``; stuff segments
                (``is_thing`` False) are skipped.
            target_crowd: ``[G]`` bool crowd flags (default: none are crowd).
            target_areas: ``[G]`` ground-truth areas (default: mask pixel counts).
            image_id: the image id (default: one more than the largest id seen).

        Raises:
            TypeError: wrong input types or dtypes.
            ValueError: mask sizes differ, flags / areas have the wrong length, unknown category ids.
        """
        if not isinstance(pred, InstanceResult):
            raise TypeError(f"pred: expected an InstanceResult, got {type(pred).__name__}")
        if not isinstance(target, Targets):
            raise TypeError(f"target: expected Targets, got {type(target).__name__}")
        if pred.masks.shape[1:] != target.masks.shape[1:]:
            raise ValueError(
                f"pred.masks: expected masks of the target's size {tuple(target.masks.shape[1:])}, "
                f"got {tuple(pred.masks.shape[1:])}"
            )
        g = len(target)
        crowd = self._flags("target_crowd", target_crowd, g)
        areas = self._areas("target_areas", target_areas, g)
        assert target.is_thing is not None
        keep = target.is_thing.cpu().numpy().astype(bool)
        gt_masks = target.masks[torch.as_tensor(keep, device=target.masks.device)]
        gt_area = areas[keep] if areas is not None else gt_masks.flatten(1).sum(1).cpu().numpy()
        gt_crowd = crowd[keep]
        gt_cat = self._labels(
            "target.labels", target.labels[torch.as_tensor(keep, device=target.labels.device)]
        )
        dt_cat = self._labels("pred.labels", pred.labels)
        ious = mask_iou(pred.masks, gt_masks, torch.as_tensor(gt_crowd))
        self._add(
            image_id=image_id,
            ious=ious,
            dt_cat=dt_cat,
            scores=pred.scores.detach().cpu().double().numpy(),
            dt_area=pred.masks.flatten(1).sum(1).cpu().numpy().astype(np.float64),
            gt_cat=gt_cat,
            gt_area=np.asarray(gt_area, np.float64),
            gt_crowd=gt_crowd,
        )
