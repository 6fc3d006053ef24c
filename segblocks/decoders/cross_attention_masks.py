"""Where each query may look in the mask decoder's cross-attention, layer by layer.

The rule of Mask2Former: a query attends to the pixels its previous prediction covers (logit >= 0
at the feature level's resolution). Query groups refine the rule: a group's own region (a prompt's
box or stroke, a previous round's mask) replaces the prediction in the first layer, or in every
layer when it is fixed (SEEM's memory prompts); a group with ``union_by_segment`` lets each query
see the union of the predictions of the queries of its segment (Uni-OVSeg's granularities).
:class:`~segblocks.decoders.MaskedAttentionDecoder` builds its masks with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks.decoders.query_groups import QueryGroup

__all__ = [
    "GroupRegion",
    "SegmentUnion",
    "attention_mask",
    "group_regions",
    "layer_cross_mask",
    "region_mask",
]

#: ``(query slice, region mask [B, Q_g, K] bool, fixed for every layer)`` of a group with a region.
GroupRegion = tuple[slice, Tensor, bool]
#: ``(query slice, segment_ids [B, Q_g], union_from [B, Q_g] or None)`` of a group whose queries
#: share the union of their segment's predictions.
SegmentUnion = tuple[slice, Tensor | None, Tensor | None]


def attention_mask(mask_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Cross-attention mask from mask logits: True where the resized prediction is >= 0.5.

    Args:
        mask_logits: ``[B, Q, H, W]`` (or tubes ``[B, Q, T, H, W]``).
        size: ``(h, w)`` of the feature level.

    Returns:
        ``[B, Q, h * w]`` (``[B, Q, T * h * w]`` for tubes) bool, detached.
    """
    b, q = mask_logits.shape[:2]
    frames = mask_logits.detach().flatten(0, -3)[:, None]  # [B * Q (* T), 1, H, W]
    resized = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    return (resized >= 0).reshape(b, q, -1)


def region_mask(region: Tensor, size: tuple[int, int], num_frames: int | None) -> Tensor:
    """A group's given region as a cross-attention mask: True where it covers any of a cell.

    Args:
        region: ``[B, Q, H, W]`` or ``[B, Q, T, H, W]`` bool at any resolution.
        size: ``(h, w)`` of the feature level.
        num_frames: ``T`` for clips (an image region is repeated over the frames), None for images.

    Returns:
        ``[B, Q, h * w]`` (``[B, Q, T * h * w]`` for clips) bool.
    """
    if num_frames is not None and region.ndim == 4:
        region = region[:, :, None].expand(-1, -1, num_frames, -1, -1)
    b, q = region.shape[:2]
    cells = F.interpolate(region.flatten(0, -3)[:, None].float(), size=size, mode="area")
    return (cells > 0).reshape(b, q, -1)


def group_regions(
    groups: Sequence[QueryGroup],
    slices: dict[str, slice],
    sizes: Sequence[tuple[int, int]],
    num_frames: int | None,
) -> list[list[GroupRegion]]:
    """Per feature level, the :data:`GroupRegion` of every group that brings a ``cross_mask``.

    Args:
        groups: the (checked) query groups.
        slices: ``{group name: slice}`` of each group along the stacked queries.
        sizes: ``(h, w)`` of each feature level.
        num_frames: ``T`` for clips, None for images.

    Returns:
        ``len(sizes)`` lists, one entry per group with a region.
    """
    return [
        [
            (slices[g.name], region_mask(g.cross_mask, size, num_frames), g.fixed_cross_mask)
            for g in groups
            if g.cross_mask is not None
        ]
        for size in sizes
    ]


def layer_cross_mask(
    logits: Tensor,
    size: tuple[int, int],
    regions: Sequence[GroupRegion],
    shared: Sequence[SegmentUnion],
    first: bool,
) -> Tensor:
    """One layer's cross-attention mask: predicted regions (unions within a segment where asked),
    overridden by the groups' own regions.

    Args:
        logits: ``[B, Q, H, W]`` (or ``[B, Q, T, H, W]``) the previous prediction of every query.
        size: ``(h, w)`` of the layer's feature level.
        regions: the groups' regions at that level (:func:`group_regions`); a region that is not
            fixed applies to the first layer only.
        shared: the groups whose queries see their segment's union of predictions (``union_from``
            limits which queries' predictions join it).
        first: whether this is the first layer.

    Returns:
        ``[B, Q, K]`` bool, True = may attend (``K = h * w``, or ``T * h * w`` for clips).
    """
    mask = attention_mask(logits, size)
    overrides = [(s, region) for s, region, fixed in regions if fixed or first]
    for s, segment_ids, sources in shared:
        assert segment_ids is not None
        same = (segment_ids[:, :, None] == segment_ids[:, None, :]).float()  # [B, Qg, Qg]
        if sources is not None:  # only these queries' masks join the union
            same = same * sources[:, None, :].float()
        union = torch.einsum("bij,bjk->bik", same, mask[:, s].float()) > 0
        if not any(o[0] == s for o in overrides):
            overrides.append((s, union))
    if not overrides:
        return mask
    parts, start = [], 0
    for s, region in sorted(overrides, key=lambda item: item[0].start):
        parts += [mask[:, start : s.start], region]
        start = s.stop
    parts.append(mask[:, start:])
    return torch.cat(parts, dim=1)
