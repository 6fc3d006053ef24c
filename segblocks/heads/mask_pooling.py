"""Mask pooling as a module (the function lives in :mod:`segblocks.ops`)."""

from __future__ import annotations

from torch import Tensor, nn

from segblocks.ops import mask_pool

__all__ = ["MaskPooling", "mask_pool"]


class MaskPooling(nn.Module):
    """Average a feature map inside each mask: a module around :func:`segblocks.ops.mask_pool`.

    Args:
        eps: added to the mask area to avoid a division by zero.
    """

    def __init__(self, *, eps: float = 1e-6) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps: expected a positive number, got {eps}")
        self.eps = eps

    def forward(self, features: Tensor, masks: Tensor) -> Tensor:
        """Pool ``features [B, C, H, W]`` inside ``masks [B, N, h, w]`` (bool or probabilities).

        Returns:
            ``[B, N, C]`` pooled features (see :func:`segblocks.ops.mask_pool` for the errors).
        """
        return mask_pool(features, masks, eps=self.eps)
