"""Mask pooling: the average of a feature map inside each (soft or binary) mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim

__all__ = ["mask_pool"]


def mask_pool(features: Tensor, masks: Tensor, *, eps: float = 1e-6) -> Tensor:
    """Average ``features`` inside every mask, one vector per mask.

    Masks at a higher resolution than the feature map are area-averaged to it (each cell weighs the
    fraction of its pixels inside the mask, so small masks are never sampled away); masks at a lower
    resolution are resized bilinearly (``align_corners=False``).
    Binary masks average the features of their pixels; soft masks (probabilities in ``[0, 1]``) give a
    weighted average. An empty mask pools to the zero vector.

    Args:
        features: ``[B, C, H, W]`` floating feature map.
        masks: ``[B, N, h, w]`` bool or floating masks (probabilities, not logits).
        eps: added to the mask area to avoid a division by zero.

    Returns:
        ``[B, N, C]`` pooled features, in the dtype of ``features``.

    Raises:
        ValueError: on wrong ranks, a batch-size mismatch, or floating masks with negative or
            non-finite values, e.g. logits (checked for CPU tensors and under ``torch.no_grad``; a
            GPU training step skips it).
        TypeError: on a non-floating ``features`` dtype.
    """
    check_ndim("features", features, 4, "[B, C, H, W]")
    check_dtype("features", features, "floating")
    check_ndim("masks", masks, 4, "[B, N, h, w]")
    if masks.shape[0] != features.shape[0]:
        raise ValueError(
            f"masks: batch size {masks.shape[0]} does not match features batch size {features.shape[0]}"
        )
    if (
        masks.is_floating_point()
        and masks.numel()
        and (masks.device.type == "cpu" or not torch.is_grad_enabled())
    ):
        # Negative weights (logits) pool to values far outside the features' range; non-negative
        # weights always give a weighted average. Checked where it costs no host sync on the
        # forward pass of a GPU training step (CPU tensors, or inference).
        lo = float(masks.detach().min())
        if not lo >= 0.0 or not bool(torch.isfinite(masks).all()):
            raise ValueError(
                f"masks: expected bool masks or non-negative weights such as probabilities, got a "
                f"minimum of {lo:g} (logits? apply sigmoid first)"
            )
    weights = masks.to(features.dtype)
    h, w = features.shape[-2:]
    if weights.shape[-2:] != (h, w):
        if weights.shape[-2] >= h and weights.shape[-1] >= w:
            # Area averaging: each feature cell weighs the fraction of its pixels inside the mask,
            # so a mask smaller than a cell still counts (bilinear would sample it away).
            weights = F.adaptive_avg_pool2d(weights, (h, w))
        else:
            weights = F.interpolate(weights, size=(h, w), mode="bilinear", align_corners=False)
    pooled = torch.einsum("bnhw,bchw->bnc", weights, features)
    area = weights.sum(dim=(-2, -1)).unsqueeze(-1)
    return pooled / (area + eps)
