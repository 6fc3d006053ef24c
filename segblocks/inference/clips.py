"""Clip predictions (mask tubes) to per-frame panoptic, semantic and instance results with ids kept over time.

A query of a video model predicts one mask tube over the ``T`` frames of a clip and one class
distribution. The image rules apply to the tube as a whole (Mask2Former-VIS, OMG-Seg): the frames
are laid one under the other, post-processed as one tall image and cut apart again, so a segment's
id, class and score are the same in every frame it appears in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from segblocks._validation import check_dtype, check_ndim, check_shape
from segblocks.inference.batch import TASKS, check_tasks, postprocess_image
from segblocks.inference.padding import unpad_mask_logits
from segblocks.structures import SegmentInfo

__all__ = [
    "ClipPrediction",
    "VideoInstanceResult",
    "VideoPanopticResult",
    "VideoSemanticResult",
    "postprocess_clips",
]


@dataclass
class VideoPanopticResult:
    """Panoptic segmentation of a clip with segment ids consistent over its frames.

    Attributes:
        segment_maps: ``[T, H, W]`` int64 segment ids; ``0`` is VOID.
        segments: one :class:`~segblocks.structures.SegmentInfo` per id present in any frame.
    """

    segment_maps: Tensor
    segments: list[SegmentInfo]

    def __post_init__(self) -> None:
        check_ndim("segment_maps", self.segment_maps, 3, "[T, H, W]")
        check_dtype("segment_maps", self.segment_maps, "integer")


@dataclass
class VideoSemanticResult:
    """Semantic segmentation of every frame of a clip: ``label_maps [T, H, W]`` int64 category ids."""

    label_maps: Tensor

    def __post_init__(self) -> None:
        check_ndim("label_maps", self.label_maps, 3, "[T, H, W]")
        check_dtype("label_maps", self.label_maps, "integer")


@dataclass
class VideoInstanceResult:
    """Instances tracked through a clip.

    Attributes:
        masks: ``[N, T, H, W]`` bool, one tube per instance (empty in frames where it is absent).
        labels: ``[N]`` int64 category ids.
        scores: ``[N]`` float confidences.
    """

    masks: Tensor
    labels: Tensor
    scores: Tensor

    def __post_init__(self) -> None:
        check_ndim("masks", self.masks, 4, "[N, T, H, W]")
        check_dtype("masks", self.masks, "bool")
        n = self.masks.shape[0]
        check_shape("labels", self.labels, (n,), f"[N={n}]")
        check_shape("scores", self.scores, (n,), f"[N={n}]")


@dataclass
class ClipPrediction:
    """Post-processed results of one clip (each None when not requested)."""

    panoptic: VideoPanopticResult | None = None
    semantic: VideoSemanticResult | None = None
    instance: VideoInstanceResult | None = None


def postprocess_clips(
    mask_logits: Tensor,
    class_logits: Tensor,
    is_thing: Sequence[bool],
    *,
    padded: tuple[int, int],
    image_sizes: Sequence[tuple[int, int]],
    tasks: Sequence[str] = TASKS,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    top_k: int = 10,
) -> list[ClipPrediction]:
    """Per-frame panoptic / semantic maps and instance tubes of every clip at its own size.

    Args:
        mask_logits: ``[B, Q, T, h, w]`` tube logits of the padded clips (any resolution).
        class_logits: ``[B, Q, C + 1]`` class logits or log-probabilities, the last column void.
        is_thing: ``C`` flags.
        padded: ``(H', W')`` of the padded frames.
        image_sizes: per clip ``(H, W)`` of the frames' valid region.
        tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
        object_mask_threshold: panoptic: queries whose best class probability is lower are dropped.
        overlap_threshold: panoptic: a segment keeps at least this fraction of its tube.
        top_k: instance: (query, class) pairs kept per clip (YouTube-VIS: 10).

    Returns:
        One :class:`ClipPrediction` per clip.

    Raises:
        ValueError: on an unknown task, logits of the wrong rank, or a number of ``image_sizes``
            other than ``B``.
    """
    check_tasks(tasks)
    check_ndim("mask_logits", mask_logits, 5, "[B, Q, T, h, w]")
    check_ndim("class_logits", class_logits, 3, "[B, Q, C + 1]")
    if len(image_sizes) != mask_logits.shape[0]:
        raise ValueError(f"image_sizes: expected {mask_logits.shape[0]} sizes, got {len(image_sizes)}")
    results = []
    q, t = mask_logits.shape[1:3]
    for i, (h, w) in enumerate(image_sizes):
        frames = unpad_mask_logits(mask_logits[i].flatten(0, 1).float(), padded, (h, w))  # [Q*T, H, W]
        tall = postprocess_image(  # the frames one under the other: one image per clip
            class_logits[i].float(),
            frames.reshape(q, t * h, w),
            is_thing,
            tasks=tasks,
            object_mask_threshold=object_mask_threshold,
            overlap_threshold=overlap_threshold,
            top_k=top_k,
        )
        result = ClipPrediction()
        if tall.panoptic is not None:
            result.panoptic = VideoPanopticResult(
                tall.panoptic.segment_map.reshape(t, h, w), tall.panoptic.segments
            )
        if tall.semantic is not None:
            result.semantic = VideoSemanticResult(tall.semantic.label_map.reshape(t, h, w))
        if tall.instance is not None:
            inst = tall.instance
            result.instance = VideoInstanceResult(
                masks=inst.masks.reshape(len(inst.labels), t, h, w), labels=inst.labels, scores=inst.scores
            )
        results.append(result)
    return results
