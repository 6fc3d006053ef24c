"""Region embeddings of masks from a frozen CLIP, and their multi-scale ensemble (Uni-OVSeg, Eqs. 5 and 7).

A mask's region embedding is the CLIP's dense embedding map mask-pooled (optionally after the
multi-scale feature adapter). The *multi-scale ensemble* runs the CLIP on the image resized to several
input sizes and pools the same masks at each, giving ``S`` embeddings per mask; the mask-text matcher
averages their costs (Eq. 7) and :func:`ensemble_region_embeddings` averages the unit vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim
from segblocks.heads.feature_adapter import MultiScaleFeatureAdapter

__all__ = ["DenseCLIP", "ensemble_region_embeddings", "multiscale_region_embeddings"]


class DenseCLIP(Protocol):
    """What region embedding needs of a CLIP backbone (:class:`~segblocks.backbones.OpenCLIPBackbone`)."""

    @property
    def size_divisibility(self) -> int:
        """H and W of the input must be multiples of this."""
        ...

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        """Feature maps of ``images [B, 3, H, W]`` in ``[0, 1]``, ``clip_dense`` among them."""
        ...

    def pool_masks(self, dense: Tensor, masks: Tensor, *, normalize: bool = True) -> Tensor:
        """Region embeddings ``[B, N, E]`` of ``masks [B, N, h, w]`` pooled from ``dense [B, E, h', w']``
        (unit norm with ``normalize``)."""
        ...


def multiscale_region_embeddings(
    clip: DenseCLIP,
    images: Tensor,
    masks: Tensor,
    sizes: Sequence[int],
    *,
    adapter: MultiScaleFeatureAdapter | None = None,
) -> Tensor:
    """Unit-norm region embeddings of every mask at every input size.

    Args:
        clip: the frozen CLIP backbone.
        images: ``[B, 3, H, W]`` RGB in ``[0, 1]``.
        masks: ``[B, N, h, w]`` bool or probabilities at any resolution (resized with the image).
        sizes: input sizes ``S`` (the longer side; each a multiple of the CLIP's size divisibility).
        adapter: the multi-scale feature adapter applied to the dense map (None: the frozen CLIP).

    Returns:
        ``[S, B, N, E]`` unit-norm embeddings (zero vectors for empty masks).

    Raises:
        ValueError: on no sizes, a size not divisible by the CLIP's, or bad shapes.
    """
    check_ndim("images", images, 4, "[B, 3, H, W]")
    check_dtype("images", images, "floating")
    check_ndim("masks", masks, 4, "[B, N, h, w]")
    if masks.shape[0] != images.shape[0]:
        raise ValueError(f"masks: expected batch {images.shape[0]}, got shape {tuple(masks.shape)}")
    if len(sizes) == 0:
        raise ValueError("sizes: expected at least one input size")
    div = int(clip.size_divisibility)
    h, w = images.shape[-2:]
    out = []
    for s in sizes:
        if s <= 0 or s % div:
            raise ValueError(f"sizes: expected positive multiples of {div}, got {list(sizes)}")
        scale = s / max(h, w)
        size = (max(div, round(h * scale / div) * div), max(div, round(w * scale / div) * div))
        resized = (
            images
            if size == (h, w)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        feats = clip(resized)
        dense = feats["clip_dense"] if adapter is None else adapter(feats, feats["clip_dense"])
        out.append(
            clip.pool_masks(dense, masks.float() if masks.dtype == torch.bool else masks, normalize=True)
        )
    return torch.stack(out)


def ensemble_region_embeddings(per_scale: Tensor) -> Tensor:
    """Average unit embeddings over the scales and renormalise -> ``[B, N, E]``.

    Args:
        per_scale: ``[S, B, N, E]`` from :func:`multiscale_region_embeddings`.
    """
    check_ndim("per_scale", per_scale, 4, "[S, B, N, E]")
    return F.normalize(per_scale.mean(0), dim=-1)
