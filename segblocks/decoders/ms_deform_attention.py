"""Multi-scale deformable attention as a module (Deformable DETR): projections around the core op.

Each query predicts, per head, level and point, a sampling offset from its reference point and a
weight (softmax over levels x points); :func:`segblocks.ops.ms_deform_attn` gathers the bilinear
samples. Precision: the projections follow autocast (bf16 on an accelerator), the sampling
locations and weights are kept in float32, and the op accumulates in float32, so the pixel decoder
need not be forced to float32 as in the reference implementation.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim
from segblocks.ops import ms_deform_attn

__all__ = ["MultiScaleDeformableAttention"]


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention of queries over ``L`` flattened feature levels.

    Args:
        dim: model width ``D`` (divisible by ``num_heads``).
        num_levels: feature levels ``L``.
        num_heads: attention heads (Mask2Former: 8).
        num_points: sampling points per head and level (Mask2Former: 4).
        backend: backend of :func:`segblocks.ops.ms_deform_attn` (``"auto"``, ``"reference"``,
            ``"triton"``).
    """

    def __init__(
        self, *, dim: int, num_levels: int, num_heads: int = 8, num_points: int = 4, backend: str = "auto"
    ) -> None:
        super().__init__()
        if dim <= 0 or num_heads <= 0 or dim % num_heads:
            raise ValueError(
                f"dim, num_heads: expected dim divisible by num_heads, got {dim} and {num_heads}"
            )
        if num_levels <= 0 or num_points <= 0:
            raise ValueError(
                f"num_levels, num_points: expected positive ints, got {num_levels} and {num_points}"
            )
        self.dim = dim
        self.num_levels = num_levels
        self.num_heads = num_heads
        self.num_points = num_points
        self.backend = backend
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's initialisation: head h starts sampling along direction ``2 pi h / heads``,
        point ``p`` at distance ``p + 1``; uniform attention weights; Xavier projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)  # [heads, 2]
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        steps = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        bias = directions[:, None, None, :] * steps[None, None, :, None]  # [heads, 1, P, 2]
        bias = bias.expand(self.num_heads, self.num_levels, self.num_points, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        value: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
    ) -> Tensor:
        """Attend from each query to a few learned locations around its reference point on every level.

        Args:
            query: ``[B, Q, D]`` queries (content + positional).
            reference_points: ``[B, Q, L, 2]`` normalised ``(x, y)`` in ``[0, 1]``.
            value: ``[B, S, D]`` flattened levels, ``S = sum(H_l * W_l)``.
            spatial_shapes: ``[L, 2]`` int64 ``(H, W)`` per level; keep it on the CPU (the op copies it
                to the device without synchronising).
            level_start_index: ``[L]`` int64 start of each level in ``S`` (on the CPU too).

        Returns:
            ``[B, Q, D]``.

        Raises:
            ValueError: on wrong shapes.
            TypeError: on non-floating inputs or non-int64 index tensors.
        """
        check_ndim("query", query, 3, "[B, Q, D]")
        check_dtype("query", query, "floating")
        check_ndim("value", value, 3, "[B, S, D]")
        b, q, d = query.shape
        if d != self.dim or value.shape[0] != b or value.shape[2] != self.dim:
            raise ValueError(
                f"query, value: expected [B, Q, {self.dim}] and [B, S, {self.dim}] with one B, "
                f"got {tuple(query.shape)} and {tuple(value.shape)}"
            )
        check_ndim("reference_points", reference_points, 4, "[B, Q, L, 2]")
        if tuple(reference_points.shape) != (b, q, self.num_levels, 2):
            raise ValueError(
                f"reference_points: expected shape ({b}, {q}, {self.num_levels}, 2), "
                f"got {tuple(reference_points.shape)}"
            )
        check_ndim("spatial_shapes", spatial_shapes, 2, "[L, 2]")
        if spatial_shapes.shape[0] != self.num_levels:
            raise ValueError(
                f"spatial_shapes: expected {self.num_levels} levels, got shape {tuple(spatial_shapes.shape)}"
            )
        h, lv, p = self.num_heads, self.num_levels, self.num_points
        v = rearrange(self.value_proj(value), "b s (h d) -> b s h d", h=h)
        offsets = rearrange(
            self.sampling_offsets(query).float(), "b q (h l p t) -> b q h l p t", h=h, l=lv, p=p, t=2
        )
        weights = rearrange(self.attention_weights(query).float(), "b q (h lp) -> b q h lp", h=h)
        weights = weights.softmax(dim=-1).view(b, q, h, lv, p)
        # offsets are in pixels of each level: divide by (W_l, H_l)
        normalizer = spatial_shapes.flip(-1).to(device=query.device, dtype=torch.float32)  # [L, 2]
        locations = (
            reference_points.float()[:, :, None, :, None, :]
            + offsets / normalizer[None, None, None, :, None, :]
        )
        out = ms_deform_attn(v, spatial_shapes, level_start_index, locations, weights, backend=self.backend)
        return self.output_proj(out)
