"""Ground truth for evaluation: what a batch holds, and targets in the shape of a panoptic result."""

from __future__ import annotations

import torch
from torch import Tensor

from segblocks.structures import Batch, PanopticResult, SegmentInfo, Targets

__all__ = ["evaluation_truth", "targets_to_panoptic", "tubes_to_panoptic"]


def evaluation_truth(batch: Batch) -> tuple[list[Targets], Tensor]:
    """The ground truth an evaluation reads from a batch: its targets and its semantic label maps.

    Args:
        batch: a :class:`~segblocks.structures.Batch` with ``targets`` and ``extras["semantic"]``
            (``[B, H, W]`` class ids, e.g. from :func:`segblocks.data.collate_batch`).

    Returns:
        ``(targets, semantic)``.

    Raises:
        ValueError: when the batch has no targets or no ``[B, H, W]`` semantic maps.
    """
    semantic = batch.extras.get("semantic")
    if batch.targets is None:
        raise ValueError("batch: evaluation needs targets, got a batch with targets=None")
    if not isinstance(semantic, Tensor) or semantic.ndim != 3 or semantic.shape[0] != len(batch):
        shape = tuple(semantic.shape) if isinstance(semantic, Tensor) else type(semantic).__name__
        raise ValueError(f'batch.extras["semantic"]: expected [B={len(batch)}, H, W] class ids, got {shape}')
    return batch.targets, semantic


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


def tubes_to_panoptic(tubes: Targets) -> list[PanopticResult]:
    """A clip's ground-truth tubes as per-frame panoptic results whose segment ids are ``1..N`` in every frame.

    Args:
        tubes: one clip's targets with ``[N, T, H, W]`` masks and ``is_thing`` flags.

    Returns:
        ``T`` panoptic results (each lists the segments present in its frame).

    Raises:
        ValueError: on image targets (``[N, H, W]`` masks).
    """
    if tubes.masks.ndim != 4:
        raise ValueError(f"tubes: expected clip targets [N, T, H, W], got masks {tuple(tubes.masks.shape)}")
    n, t, h, w = tubes.masks.shape
    tall = Targets(
        masks=tubes.masks.reshape(n, t * h, w),
        labels=tubes.labels,
        instance_ids=tubes.instance_ids,
        is_thing=tubes.is_thing,
    )
    whole = targets_to_panoptic(tall)
    frames = []
    for frame in whole.segment_map.reshape(t, h, w):
        present = set(frame.unique().tolist())
        frames.append(
            PanopticResult(segment_map=frame, segments=[s for s in whole.segments if s.id in present])
        )
    return frames
