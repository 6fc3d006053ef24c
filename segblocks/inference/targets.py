"""Ground truth in the shape of results, for evaluation: targets as a panoptic result."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from segblocks.structures import PanopticResult, SegmentInfo, Targets

__all__ = ["EvalBatch", "targets_to_panoptic"]


class EvalBatch(Protocol):
    """A batch as evaluation reads it (e.g. :class:`segblocks.data.ShapesBatch`)."""

    images: Tensor
    targets: list[Targets]
    semantic: Tensor


def targets_to_panoptic(targets: Targets) -> PanopticResult:
    """Ground truth as a panoptic result: segment ids ``1..N`` in the order of the targets.

    Pixels no target covers are VOID (0); where targets overlap, the later one wins.

    Args:
        targets: one image's targets with ``is_thing`` flags (masks ``[N, H, W]``).

    Returns:
        The panoptic result (segments no pixel is left to are dropped).
    """
    assert targets.is_thing is not None
    h, w = targets.masks.shape[-2:]
    segment_map = torch.zeros((h, w), dtype=torch.int64)
    segments = []
    masks = targets.masks.cpu()
    for k, (label, thing) in enumerate(zip(targets.labels.tolist(), targets.is_thing.tolist())):
        segment_map[masks[k]] = k + 1
        segments.append(SegmentInfo(id=k + 1, category_id=int(label), is_thing=bool(thing)))
    present = set(segment_map.unique().tolist())
    return PanopticResult(segment_map=segment_map, segments=[s for s in segments if s.id in present])
