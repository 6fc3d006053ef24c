"""Mask head: query embeddings -> mask logits by a dot product with the per-pixel mask features."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim
from segblocks.layers.mlp import MLP

__all__ = ["MaskHead"]


class MaskHead(nn.Module):
    """One mask per query: the dot product of its MLP embedding with every pixel's mask feature.

    ``mask_logits[b, q, y, x] = <MLP(queries[b, q]), mask_features[b, :, y, x]>`` (MaskFormer).

    Args:
        dim: query width ``D``.
        mask_dim: channels of the mask features.
        num_layers: MLP depth (Mask2Former: 3).
    """

    def __init__(self, *, dim: int, mask_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        self.mlp = MLP(in_dim=dim, hidden_dim=dim, out_dim=mask_dim, num_layers=num_layers)
        self.dim = dim
        self.mask_dim = mask_dim

    def embed(self, queries: Tensor) -> Tensor:
        """Mask embeddings ``[B, Q, mask_dim]`` of queries ``[B, Q, D]``."""
        return self.mlp(queries)

    def forward(self, queries: Tensor, mask_features: Tensor) -> Tensor:
        """Predict one mask per query, or one mask tube per query over the frames of a clip.

        Args:
            queries: ``[B, Q, D]`` query embeddings (after the decoder's final norm).
            mask_features: ``[B, mask_dim, H, W]`` per-pixel embeddings (stride 4), or
                ``[B, T, mask_dim, H, W]`` for clips.

        Returns:
            ``[B, Q, H, W]`` mask logits, or ``[B, Q, T, H, W]`` tubes for clips.

        Raises:
            ValueError: on wrong ranks, widths or batch sizes.
            TypeError: on non-floating inputs.
        """
        check_ndim("queries", queries, 3, "[B, Q, D]")
        check_dtype("queries", queries, "floating")
        if mask_features.ndim not in (4, 5):
            raise ValueError(
                f"mask_features: expected [B, C, H, W] or [B, T, C, H, W], got shape {tuple(mask_features.shape)}"
            )
        check_dtype("mask_features", mask_features, "floating")
        if queries.shape[-1] != self.dim:
            raise ValueError(f"queries: expected width D={self.dim}, got shape {tuple(queries.shape)}")
        channels = mask_features.shape[-3]
        if channels != self.mask_dim or mask_features.shape[0] != queries.shape[0]:
            layout = "C, H, W" if mask_features.ndim == 4 else "T, C, H, W"
            raise ValueError(
                f"mask_features: expected shape ({queries.shape[0]}, {layout}) with C={self.mask_dim}, "
                f"got {tuple(mask_features.shape)}"
            )
        return self.dot(self.embed(queries), mask_features)

    @staticmethod
    def dot(embeddings: Tensor, mask_features: Tensor) -> Tensor:
        """Mask logits from mask embeddings already computed (:meth:`embed`; no checks).

        Args:
            embeddings: ``[B, Q, C]``.
            mask_features: ``[B, C, H, W]``, or ``[B, T, C, H, W]`` for clips.

        Returns:
            ``[B, Q, H, W]``, or ``[B, Q, T, H, W]``.
        """
        if mask_features.ndim == 5:
            return torch.einsum("bqc,btchw->bqthw", embeddings, mask_features)
        return torch.einsum("bqc,bchw->bqhw", embeddings, mask_features)
