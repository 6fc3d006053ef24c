"""YouTube-VIS video instance segmentation AP: COCO AP with spatio-temporal mask IoU."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim, check_shape
from segblocks.metrics._coco_engine import MAX_DETS, YTVIS_AREA_RANGES
from segblocks.metrics.mask_ap import COCOStyleAP, mask_iou

__all__ = ["VideoAP", "VideoInstances", "average_frame_area"]


@dataclass
class VideoInstances:
    """Instances tracked through a clip (ground truth or predictions).

    Attributes:
        masks: ``[N, T, H, W]`` bool, one mask tube per instance (empty where it is absent).
        labels: ``[N]`` integer category ids.
        scores: ``[N]`` float confidences (required for predictions).
        iscrowd: ``[N]`` bool crowd flags (ground truth; default none).
    """

    masks: Tensor
    labels: Tensor
    scores: Tensor | None = None
    iscrowd: Tensor | None = None

    def __post_init__(self) -> None:
        check_ndim("masks", self.masks, 4, "[N, T, H, W]")
        check_dtype("masks", self.masks, "bool")
        n = self.masks.shape[0]
        check_shape("labels", self.labels, (n,), f"[N={n}]")
        check_dtype("labels", self.labels, "integer")
        if self.scores is not None:
            check_shape("scores", self.scores, (n,), f"[N={n}]")
            check_dtype("scores", self.scores, "floating")
        if self.iscrowd is not None:
            check_shape("iscrowd", self.iscrowd, (n,), f"[N={n}]")
            check_dtype("iscrowd", self.iscrowd, "bool")


def average_frame_area(masks: Tensor) -> np.ndarray:
    """Mean area over the frames where each instance is present (0 if never present).

    Args:
        masks: ``[N, T, H, W]`` bool.

    Returns:
        ``[N]`` float64 areas (YouTube-VIS's ``avg_area``, used for the area ranges).
    """
    per_frame = masks.flatten(2).sum(2).double()  # [N, T]
    present = (per_frame > 0).sum(1)
    avg = torch.where(present > 0, per_frame.sum(1) / present.clamp_min(1), torch.zeros_like(per_frame[:, 0]))
    return avg.cpu().numpy()


class VideoAP(COCOStyleAP):
    """YouTube-VIS AP: COCO AP in which IoU is taken over whole sequences.

    The IoU of two mask tubes is the sum over frames of their intersections divided by the sum of
    their unions; area ranges (small < 128², medium < 256², large) use each instance's average area
    over the frames where it is present. As in the YouTube-VIS evaluation code, crowd ground truths
    are ignored and may absorb several detections, but their IoU is the plain tube IoU.

    Args:
        categories: category ids (ints or objects with an ``id``).
        area_ranges: ``(name, low, high)`` ranges named all / small / medium / large.
        max_dets: detection caps per video, increasing.
    """

    def __init__(
        self,
        *,
        categories: Iterable[Any],
        area_ranges: Sequence[tuple[str, float, float]] = YTVIS_AREA_RANGES,
        max_dets: Sequence[int] = MAX_DETS,
    ) -> None:
        super().__init__(categories=categories, area_ranges=area_ranges, max_dets=max_dets)

    def update(
        self,
        pred: VideoInstances,
        target: VideoInstances,
        *,
        video_id: int | None = None,
        target_areas: Tensor | np.ndarray | None = None,
    ) -> None:
        """Add one video.

        Args:
            pred: predicted tubes ``[D, T, H, W]`` with labels and scores.
            target: ground-truth tubes ``[G, T, H, W]`` with labels (and crowd flags).
            video_id: the video id (default: one more than the largest id seen).
            target_areas: ``[G]`` ground-truth average areas for the area ranges (YouTube-VIS
                takes them from the JSON's ``areas``); default: :func:`average_frame_area`.

        Raises:
            TypeError: an input is not ``VideoInstances``.
            ValueError: the clips differ in length or size, predictions lack scores, unknown
                category ids.
        """
        if not isinstance(pred, VideoInstances):
            raise TypeError(f"pred: expected VideoInstances, got {type(pred).__name__}")
        if not isinstance(target, VideoInstances):
            raise TypeError(f"target: expected VideoInstances, got {type(target).__name__}")
        if pred.scores is None:
            raise ValueError("pred.scores: predictions need scores [N]")
        if pred.masks.shape[1:] != target.masks.shape[1:]:
            raise ValueError(
                f"pred.masks: expected the target's [T, H, W] = {tuple(target.masks.shape[1:])}, "
                f"got {tuple(pred.masks.shape[1:])}"
            )
        g = target.masks.shape[0]
        crowd = target.iscrowd if target.iscrowd is not None else torch.zeros(g, dtype=torch.bool)
        areas = self._areas("target_areas", target_areas, g)
        self._add(
            image_id=video_id,
            ious=mask_iou(pred.masks, target.masks),
            dt_cat=self._labels("pred.labels", pred.labels),
            scores=pred.scores.detach().cpu().double().numpy(),
            dt_area=average_frame_area(pred.masks),
            gt_cat=self._labels("target.labels", target.labels),
            gt_area=average_frame_area(target.masks) if areas is None else areas,
            gt_crowd=crowd.cpu().numpy().astype(bool),
        )
