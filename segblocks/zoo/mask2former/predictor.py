"""Mask2Former's predictor: thresholds and post-processing from raw outputs to per-image results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from segblocks._validation import check_ndim
from segblocks.inference import TASKS, SegmentationPrediction, check_tasks, padded_size, postprocess_batch
from segblocks.zoo.mask2former.config import Mask2FormerConfig

if TYPE_CHECKING:
    from segblocks.zoo.mask2former.model import Mask2Former

__all__ = ["Mask2FormerPrediction", "Mask2FormerPredictor"]

#: Post-processed results of one image (:class:`segblocks.inference.SegmentationPrediction`).
Mask2FormerPrediction = SegmentationPrediction


class Mask2FormerPredictor:
    """Panoptic, semantic and instance results of a (trained) :class:`Mask2Former`.

    Thresholds default to the model's config (the paper's when it has none).

    Args:
        model: the model (put it in eval mode for inference).
        object_mask_threshold: panoptic: minimum class probability of a kept query.
        overlap_threshold: panoptic: minimum kept fraction of a query's mask.
        top_k: instance: (query, class) pairs kept per image.
    """

    def __init__(
        self,
        model: Mask2Former,
        *,
        object_mask_threshold: float | None = None,
        overlap_threshold: float | None = None,
        top_k: int | None = None,
    ) -> None:
        cfg = model.config if model.config is not None else Mask2FormerConfig()
        self.model = model
        self.object_mask_threshold = (
            cfg.object_mask_threshold if object_mask_threshold is None else object_mask_threshold
        )
        self.overlap_threshold = cfg.overlap_threshold if overlap_threshold is None else overlap_threshold
        self.top_k = cfg.top_k if top_k is None else top_k

    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        *,
        tasks: Sequence[str] = TASKS,
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[Mask2FormerPrediction]:
        """Post-processed results at the input resolution.

        Args:
            images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
            tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
            image_sizes: per image ``(h, w)`` of the valid region (images padded by the caller);
                default: the full ``H x W``.

        Returns:
            One :class:`Mask2FormerPrediction` per image (category ids index ``model.class_names``).

        Raises:
            ValueError: on an unknown task, bad images or mismatched ``image_sizes``.
        """
        check_tasks(tasks)
        check_ndim("images", images, 4, "[B, 3, H, W]")
        model = self.model
        h, w = int(images.shape[-2]), int(images.shape[-1])
        out = model(images)
        assert out.class_logits is not None
        return postprocess_batch(
            out.mask_logits,
            out.class_logits,
            model.is_thing,
            padded=padded_size(h, w, model.size_divisibility) if model.pad_inputs else (h, w),
            image_sizes=list(image_sizes) if image_sizes is not None else [(h, w)] * images.shape[0],
            tasks=tasks,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            top_k=self.top_k,
        )
