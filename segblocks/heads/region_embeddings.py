"""Region embeddings of masks from a frozen CLIP, their multi-scale ensemble (Uni-OVSeg, Eqs. 5 and 7), and
the frozen-CLIP classifier of FC-CLIP and its followers (:func:`region_logits`).

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

__all__ = ["DenseCLIP", "ensemble_region_embeddings", "multiscale_region_embeddings", "region_logits"]


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

    def embed_masks(self, features: Tensor, masks: Tensor, *, normalize: bool = True) -> Tensor:
        """CNN CLIPs: region embeddings ``[B, N, E]`` of ``masks [B, N, h, w]`` pooled from the ``res5``
        map ``features``, then the CLIP head (unit norm with ``normalize``)."""
        ...

    @property
    def kind(self) -> str:
        """``"cnn"`` or ``"vit"``."""
        ...

    @property
    def embed_dim(self) -> int:
        """``E``, the width of the joint embedding space."""
        ...

    @property
    def logit_scale(self) -> Tensor:
        """CLIP's learned temperature ``exp(logit_scale)``."""
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


def region_logits(
    clip: DenseCLIP, features: dict[str, Tensor], masks: Tensor, text_embeddings: Tensor
) -> Tensor:
    """The frozen-CLIP classifier of FC-CLIP and its followers: each mask's region against class texts.

    A CNN CLIP pools its ``res5`` map and then applies its head (``embed_masks``, FC-CLIP's order);
    a ViT CLIP pools ``clip_dense`` (``pool_masks``). Logits: cosine x CLIP's own ``logit_scale``.

    Args:
        clip: the frozen CLIP backbone.
        features: its outputs for the images (``res5`` or ``clip_dense`` is read).
        masks: ``[B, N, H', W']`` bool or probabilities (empty masks give zero logits).
        text_embeddings: ``[C, E]`` class embeddings (normalised or not).

    Returns:
        ``[B, N, C]`` float32 logits.

    Raises:
        ValueError: on text embeddings of the wrong shape, a missing map or bad mask shapes.
    """
    check_ndim("text_embeddings", text_embeddings, 2, "[C, E]")
    if text_embeddings.shape[1] != clip.embed_dim:
        raise ValueError(
            f"text_embeddings: expected width E={clip.embed_dim}, got shape {tuple(text_embeddings.shape)}"
        )
    key, embed = ("res5", clip.embed_masks) if clip.kind == "cnn" else ("clip_dense", clip.pool_masks)
    if key not in features:
        raise ValueError(f"features: expected the CLIP's {key!r} map, got keys {sorted(features)}")
    regions = embed(features[key], masks)
    text = F.normalize(text_embeddings.float(), dim=-1)
    return clip.logit_scale * torch.einsum("bne,ce->bnc", regions.float(), text)
