"""Panoptic post-processing (Mask2Former's rule): confident queries, per-pixel arg-max, overlap filter.

1. Keep queries whose top class is not void and whose probability exceeds ``object_mask_threshold``.
2. Every pixel goes to the kept query with the largest ``score * sigmoid(mask)``.
3. A query's segment is the pixels it won that are also inside its own mask (``sigmoid >= 0.5``);
   it is dropped when that is less than ``overlap_threshold`` of its own mask's area.
4. Segments of the same stuff class are merged into one.

Pixels no segment claims stay ``0`` (VOID).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from segblocks.inference.checks import check_query_outputs
from segblocks.structures import PanopticResult, SegmentInfo

__all__ = ["panoptic_inference"]


def panoptic_inference(
    class_logits: Tensor,
    mask_logits: Tensor,
    *,
    is_thing: Sequence[bool] | Tensor,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
) -> PanopticResult:
    """Turn one image's query predictions into a panoptic segmentation.

    Args:
        class_logits: ``[Q, C + 1]`` logits, the last column void.
        mask_logits: ``[Q, H, W]`` logits at the output resolution.
        is_thing: ``C`` flags, True for thing classes (stuff segments of one class are merged).
        object_mask_threshold: minimum class probability of a kept query (Mask2Former: 0.8).
        overlap_threshold: minimum fraction of a query's mask it must keep after the arg-max (0.8).

    Returns:
        :class:`~segblocks.structures.PanopticResult` with ids ``1..K`` and their segment infos
        (score = the query's class probability).

    Raises:
        ValueError: on wrong shapes, ``is_thing`` of the wrong length, or thresholds outside [0, 1].
        TypeError: on non-floating logits.
    """
    check_query_outputs(class_logits, mask_logits)
    num_classes = class_logits.shape[1] - 1
    thing = torch.as_tensor(is_thing, dtype=torch.bool).flatten().tolist()
    if len(thing) != num_classes:
        raise ValueError(f"is_thing: expected {num_classes} flags (one per class), got {len(thing)}")
    for name, value in (
        ("object_mask_threshold", object_mask_threshold),
        ("overlap_threshold", overlap_threshold),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: expected a value in [0, 1], got {value}")
    h, w = mask_logits.shape[-2:]
    device = mask_logits.device
    scores, labels = class_logits.float().softmax(-1).max(-1)
    keep = (labels != num_classes) & (scores > object_mask_threshold)
    segment_map = torch.zeros((h, w), dtype=torch.int64, device=device)
    if not bool(keep.any()):
        return PanopticResult(segment_map=segment_map, segments=[])
    scores, labels = scores[keep], labels[keep]
    masks = mask_logits[keep].float().sigmoid()  # [K, H, W]
    winner = (scores[:, None, None] * masks).argmax(0)  # [H, W]
    own = masks >= 0.5
    won = winner[None] == torch.arange(len(scores), device=device)[:, None, None]
    segment = won & own
    won_area = won.flatten(1).sum(-1).tolist()
    own_area = own.flatten(1).sum(-1).tolist()
    seg_area = segment.flatten(1).sum(-1).tolist()
    segments: list[SegmentInfo] = []
    stuff_ids: dict[int, int] = {}
    for k, (label, score) in enumerate(zip(labels.tolist(), scores.tolist())):
        if won_area[k] == 0 or own_area[k] == 0 or seg_area[k] == 0:
            continue
        if won_area[k] / own_area[k] < overlap_threshold:
            continue
        if not thing[label] and label in stuff_ids:
            segment_map[segment[k]] = stuff_ids[label]
            continue
        new_id = len(segments) + 1
        if not thing[label]:
            stuff_ids[label] = new_id
        segment_map[segment[k]] = new_id
        segments.append(
            SegmentInfo(id=new_id, category_id=int(label), is_thing=bool(thing[label]), score=score)
        )
    return PanopticResult(segment_map=segment_map, segments=segments)
