"""A batch of query predictions to per-image panoptic, semantic and instance results.

Every mask-classification model (Mask2Former and the systems built on it) ends the same way: mask
logits of a padded batch and one class distribution per query, cut back to each image's valid
region and post-processed by the requested tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from segblocks._validation import check_ndim
from segblocks.inference.instance import instance_inference
from segblocks.inference.padding import unpad_mask_logits
from segblocks.inference.panoptic import panoptic_inference
from segblocks.inference.semantic import semantic_inference
from segblocks.structures import InstanceResult, PanopticResult, SemanticResult

__all__ = ["TASKS", "SegmentationPrediction", "check_tasks", "postprocess_batch", "postprocess_image"]

#: The post-processing tasks, in the order they are run.
TASKS = ("panoptic", "semantic", "instance")


@dataclass
class SegmentationPrediction:
    """Post-processed results of one image (each None when not requested)."""

    panoptic: PanopticResult | None = None
    semantic: SemanticResult | None = None
    instance: InstanceResult | None = None


def check_tasks(tasks: Sequence[str]) -> None:
    """Raise unless ``tasks`` is a non-empty subset of :data:`TASKS`.

    Args:
        tasks: the requested tasks.

    Raises:
        ValueError: on an empty or unknown task list.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"tasks: expected a non-empty subset of {TASKS}, got {list(tasks)}")


def postprocess_batch(
    mask_logits: Tensor,
    class_logits: Tensor,
    is_thing: Sequence[bool],
    *,
    padded: tuple[int, int],
    image_sizes: Sequence[tuple[int, int]],
    tasks: Sequence[str] = TASKS,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    top_k: int = 100,
) -> list[SegmentationPrediction]:
    """Panoptic / semantic / instance results of every image at its own size.

    Args:
        mask_logits: ``[B, Q, h, w]`` mask logits of the padded batch (any resolution; they are
            resized to ``padded`` and cropped).
        class_logits: ``[B, Q, C + 1]`` class logits or log-probabilities, the last column void.
        is_thing: ``C`` flags.
        padded: ``(H', W')`` of the padded input.
        image_sizes: per image ``(h, w)`` of the valid region.
        tasks: any of :data:`TASKS`.
        object_mask_threshold: panoptic: queries whose best class probability is lower are dropped.
        overlap_threshold: panoptic: a segment keeps at least this fraction of its mask.
        top_k: instance: (query, class) pairs kept per image.

    Returns:
        One :class:`SegmentationPrediction` per image.

    Raises:
        ValueError: on an unknown task, logits of the wrong rank, or a number of ``image_sizes``
            other than ``B``.
    """
    check_tasks(tasks)
    check_ndim("mask_logits", mask_logits, 4, "[B, Q, h, w]")
    check_ndim("class_logits", class_logits, 3, "[B, Q, C + 1]")
    if len(image_sizes) != mask_logits.shape[0]:
        raise ValueError(f"image_sizes: expected {mask_logits.shape[0]} sizes, got {len(image_sizes)}")
    results = []
    for i, size in enumerate(image_sizes):
        masks = unpad_mask_logits(mask_logits[i].float(), padded, size)
        results.append(
            postprocess_image(
                class_logits[i].float(),
                masks,
                is_thing,
                tasks=tasks,
                object_mask_threshold=object_mask_threshold,
                overlap_threshold=overlap_threshold,
                top_k=top_k,
            )
        )
    return results


def postprocess_image(
    class_logits: Tensor,
    mask_logits: Tensor,
    is_thing: Sequence[bool],
    *,
    tasks: Sequence[str] = TASKS,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    top_k: int = 100,
) -> SegmentationPrediction:
    """The requested results of one image's query predictions, already at the image size.

    Args:
        class_logits: ``[Q, C + 1]`` class logits or log-probabilities, the last column void.
        mask_logits: ``[Q, H, W]`` mask logits at the output size.
        is_thing: ``C`` flags.
        tasks: any of :data:`TASKS`.
        object_mask_threshold: panoptic: queries whose best class probability is lower are dropped.
        overlap_threshold: panoptic: a segment keeps at least this fraction of its mask.
        top_k: instance: (query, class) pairs kept.
    """
    result = SegmentationPrediction()
    if "panoptic" in tasks:
        result.panoptic = panoptic_inference(
            class_logits,
            mask_logits,
            is_thing=is_thing,
            object_mask_threshold=object_mask_threshold,
            overlap_threshold=overlap_threshold,
        )
    if "semantic" in tasks:
        result.semantic = semantic_inference(class_logits, mask_logits)
    if "instance" in tasks:
        result.instance = instance_inference(class_logits, mask_logits, top_k=top_k, is_thing=is_thing)
    return result
