"""The masked-attention mask decoder shared by every model of the zoo (Mask2Former's transformer decoder).

Each layer does masked cross-attention to one feature level (level ``i % L``, low to high
resolution), then self-attention among the queries under the query groups' rules, then an FFN.
Before the first layer and after every layer the decoder predicts a mask per query (mask head on the
normalised queries and the stride-4 mask features); the next layer's cross-attention is restricted to
the pixels inside that prediction (logit >= 0 at the level's resolution), a fully blocked query
attends everywhere. A query group may replace that rule with its own region: a first-layer mask
(a prompt's box or stroke, a previous round's mask) or a mask fixed for every layer (memory prompts).
A group may also carry a dense prompt: per-segment features added to the mask features for its
own masks (SAM's mask prompt; SEEM's world scale gives the previous round's mask this way).
All ``L + 1`` predictions are returned for deep supervision; class, IoU or other heads are applied by
the model to the returned query embeddings.

Clips: with ``num_frames=T`` the features hold the ``T`` frames of each clip (``[B * T, C, H, W]``),
the queries attend jointly to every frame's pixels (with a 3D position encoding) and each query
predicts a mask tube ``[T, H, W]`` (Mask2Former-VIS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim
from segblocks.decoders import cross_attention_masks as masks
from segblocks.decoders.query_groups import (
    QueryGroup,
    build_self_attention_mask,
    check_query_groups,
    concat_query_groups,
)
from segblocks.layers.attention import CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from segblocks.layers.mask_head import MaskHead
from segblocks.layers.position_encoding import SinePositionEncoding3D
from segblocks.layers.random_fourier import RandomFourierPositionEncoding

__all__ = [
    "MaskDecoderOutput",
    "MaskedAttentionDecoder",
    "MaskedAttentionDecoderLayer",
    "build_masked_attention_decoder",
]


@dataclass
class MaskDecoderOutput:
    """Per-prediction outputs of the mask decoder (``L + 1`` entries, the first from the raw queries).

    Attributes:
        queries: ``L + 1`` tensors ``[B, Qt, D]``, the normalised query embeddings each prediction used.
        mask_logits: ``L + 1`` tensors ``[B, Qt, H, W]`` at the mask features' resolution
            (``[B, Qt, T, H, W]`` tubes for clips).
        slices: ``{group name: slice}`` locating each group along ``Qt``.
    """

    queries: list[Tensor]
    mask_logits: list[Tensor]
    slices: dict[str, slice]

    def group(self, name: str) -> MaskDecoderOutput:
        """The outputs of one query group only.

        Raises:
            KeyError: when no group has that name.
        """
        if name not in self.slices:
            raise KeyError(f"name: no query group {name!r}; groups are {list(self.slices)}")
        s = self.slices[name]
        return MaskDecoderOutput(
            queries=[q[:, s] for q in self.queries],
            mask_logits=[m[:, s] for m in self.mask_logits],
            slices={name: slice(0, s.stop - s.start)},
        )


class MaskedAttentionDecoderLayer(nn.Module):
    """One decoder layer: masked cross-attention, then self-attention, then FFN.

    Args:
        cross_attention: the cross-attention sub-layer.
        self_attention: the self-attention sub-layer.
        ffn: the feed-forward sub-layer.
    """

    def __init__(
        self, *, cross_attention: CrossAttentionLayer, self_attention: SelfAttentionLayer, ffn: FFNLayer
    ) -> None:
        super().__init__()
        self.cross_attention = cross_attention
        self.self_attention = self_attention
        self.ffn = ffn

    def forward(
        self,
        queries: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        cross_mask: Tensor | None,
        self_mask: Tensor | None,
        cross_attends: Tensor | None = None,
    ) -> Tensor:
        """Refine the queries once.

        Args:
            queries: ``[B, Q, D]``.
            query_pos: ``[B, Q, D]``.
            memory: ``[B, K, D]`` one flattened feature level.
            memory_pos: ``[B, K, D]``.
            cross_mask: ``[B, Q, K]`` bool, True = may attend, or None.
            self_mask: ``[B, Q, Q]`` bool, True = may attend, or None.
            cross_attends: ``[Q]`` bool; queries marked False skip cross-attention. None = all attend.

        Returns:
            ``[B, Q, D]`` refined queries.
        """
        attended = self.cross_attention(queries, query_pos, memory, memory_pos, cross_mask)
        if cross_attends is not None:
            attended = torch.where(cross_attends[None, :, None], attended, queries)
        queries = self.self_attention(attended, query_pos, self_mask)
        return self.ffn(queries)


class MaskedAttentionDecoder(nn.Module):
    """Masked-attention transformer decoder over query groups with deep supervision.

    Args:
        layers: the decoder layers (Mask2Former: 9).
        mask_head: predicts masks from normalised queries and mask features (used for the attention
            masks and returned predictions).
        dim: model width ``D``.
        in_channels: channels of each input feature level, low to high resolution; a level whose
            channels differ from ``D`` gets a 1x1 projection.
        position_encoding: encodes the feature levels' pixel positions, ``forward(x, num_frames)``
            (default: :class:`~segblocks.layers.SinePositionEncoding3D`, ``D`` channels: the 2D sine
            encoding for images, plus a sine code of the frame index for clips); Uni-OVSeg gives a
            :class:`~segblocks.layers.RandomFourierPositionEncoding` (images only).
    """

    def __init__(
        self,
        *,
        layers: Sequence[MaskedAttentionDecoderLayer],
        mask_head: MaskHead,
        dim: int,
        in_channels: Sequence[int],
        position_encoding: SinePositionEncoding3D | RandomFourierPositionEncoding | None = None,
    ) -> None:
        super().__init__()
        if len(layers) == 0:
            raise ValueError("layers: expected at least one decoder layer")
        if len(in_channels) == 0:
            raise ValueError("in_channels: expected at least one feature level")
        if mask_head.dim != dim:
            raise ValueError(f"mask_head: expected query width {dim}, got {mask_head.dim}")
        self.layers = nn.ModuleList(layers)
        self.mask_head = mask_head
        self.dim = dim
        self.num_levels = len(in_channels)
        self.in_channels = tuple(in_channels)
        self.input_proj = nn.ModuleList(
            nn.Identity() if c == dim else nn.Conv2d(c, dim, kernel_size=1) for c in in_channels
        )
        self.level_embed = nn.Embedding(self.num_levels, dim)
        self.position_encoding: SinePositionEncoding3D | RandomFourierPositionEncoding = (
            position_encoding or SinePositionEncoding3D(dim=dim)
        )
        self.norm = nn.LayerNorm(dim)

    @property
    def num_predictions(self) -> int:
        """``L + 1``: one prediction before the first layer and one after each layer."""
        return len(self.layers) + 1

    def predict_masks(
        self,
        queries: Tensor,
        mask_features: Tensor,
        dense: Sequence[tuple[slice, Tensor]] = (),
    ) -> tuple[Tensor, Tensor]:
        """Normalise the queries and predict their masks.

        Args:
            queries: ``[B, Q, D]`` decoder state.
            mask_features: ``[B, C, H, W]`` (or ``[B, T, C, H, W]`` for clips).
            dense: ``(slice, [B, S, C, H, W])`` per group with a dense prompt (images only): the
                queries of the slice, ``S`` runs of consecutive queries, add the dot product of their
                mask embeddings with their run's features.

        Returns:
            ``(normalised queries [B, Q, D], mask logits [B, Q, H, W] or [B, Q, T, H, W])``.
        """
        normed = self.norm(queries)
        if not dense:
            return normed, self.mask_head(normed, mask_features)
        embeddings = self.mask_head.embed(normed)  # once, for the plain and the dense terms
        logits = self.mask_head.dot(embeddings, mask_features)
        parts, start = [], 0
        for s, features in sorted(dense, key=lambda item: item[0].start):
            runs = embeddings[:, s].unflatten(1, (features.shape[1], -1))
            extra = torch.einsum("bskc,bschw->bskhw", runs, features.to(runs.dtype)).flatten(1, 2)
            parts += [logits[:, start : s.start], logits[:, s] + extra]
            start = s.stop
        return normed, torch.cat([*parts, logits[:, start:]], dim=1)

    @staticmethod
    def attention_mask(mask_logits: Tensor, size: tuple[int, int]) -> Tensor:
        """Cross-attention mask from mask logits (:func:`~segblocks.decoders.cross_attention_masks.attention_mask`).

        Args:
            mask_logits: ``[B, Q, H, W]`` (or tubes ``[B, Q, T, H, W]``).
            size: ``(h, w)`` of the feature level.
        """
        return masks.attention_mask(mask_logits, size)

    @staticmethod
    def region_mask(region: Tensor, size: tuple[int, int], num_frames: int | None) -> Tensor:
        """A group's region as a cross-attention mask (:func:`~segblocks.decoders.cross_attention_masks.region_mask`).

        Args:
            region: ``[B, Q, H, W]`` or ``[B, Q, T, H, W]`` bool at any resolution.
            size: ``(h, w)`` of the feature level.
            num_frames: ``T`` for clips, None for images.
        """
        return masks.region_mask(region, size, num_frames)

    def forward(
        self,
        groups: Sequence[QueryGroup],
        features: Sequence[Tensor],
        mask_features: Tensor,
        *,
        num_frames: int | None = None,
    ) -> MaskDecoderOutput:
        """Decode the query groups into masks (or mask tubes).

        Args:
            groups: query groups, each ``[B, Q_g, D]``.
            features: ``L`` maps ``[B, C_l, H_l, W_l]``, low to high resolution; for clips
                ``[B * T, C_l, H_l, W_l]``, the frames of a clip consecutive.
            mask_features: ``[B, C, H, W]`` stride-4 per-pixel embeddings (``[B * T, C, H, W]``).
            num_frames: ``T`` for clips; None for images.

        Returns:
            :class:`MaskDecoderOutput` with ``len(layers) + 1`` predictions.

        Raises:
            ValueError: on a wrong number of levels, channels, batch sizes, frames or query width, or
                bad groups (a group's ``cross_mask`` of another batch, query count or frame count).
            TypeError: on non-floating features.
        """
        if len(features) != self.num_levels:
            raise ValueError(f"features: expected {self.num_levels} levels, got {len(features)}")
        check_ndim("mask_features", mask_features, 4, "[B, C, H, W]")
        t = 1 if num_frames is None else int(num_frames)
        if t < 1 or mask_features.shape[0] % t:
            raise ValueError(
                f"num_frames: expected a positive divisor of the batch of mask_features "
                f"({mask_features.shape[0]} = B * T), got {num_frames}"
            )
        batch = mask_features.shape[0] // t
        for i, (f, c) in enumerate(zip(features, self.in_channels)):
            check_ndim(f"features[{i}]", f, 4, "[B, C, H, W]")
            check_dtype(f"features[{i}]", f, "floating")
            if f.shape[0] != batch * t or f.shape[1] != c:
                raise ValueError(
                    f"features[{i}]: expected shape ({batch * t}, {c}, H, W), got {tuple(f.shape)}"
                )
        check_query_groups(groups)
        stacked = concat_query_groups(groups, checked=True)
        if stacked.content.shape[0] != batch or stacked.content.shape[2] != self.dim:
            raise ValueError(
                f"groups: expected queries [B={batch}, Q, D={self.dim}], got {tuple(stacked.content.shape)}"
            )
        for g in groups:
            if g.cross_mask is not None and g.cross_mask.ndim == 5 and g.cross_mask.shape[2] != t:
                raise ValueError(
                    f"{g.name}.cross_mask: expected T={t} frames, got shape {tuple(g.cross_mask.shape)}"
                )
            if g.dense_prompt is not None:
                expected = (self.mask_head.mask_dim, *mask_features.shape[-2:])
                if num_frames is not None or tuple(g.dense_prompt.shape[2:]) != expected:
                    raise ValueError(
                        f"{g.name}.dense_prompt: expected [B, S, C, H, W] with (C, H, W) = {expected} "
                        f"(the mask features'; images only), got shape {tuple(g.dense_prompt.shape)}"
                        + (f" with num_frames={num_frames}" if num_frames is not None else "")
                    )
        dense = [(stacked.slices[g.name], g.dense_prompt) for g in groups if g.dense_prompt is not None]
        self_mask = build_self_attention_mask(groups, checked=True)
        if num_frames is not None:
            mask_features = mask_features.unflatten(0, (batch, t))  # [B, T, C, H, W]

        memories, memory_pos, sizes = [], [], []
        for level, f in enumerate(features):
            sizes.append((int(f.shape[-2]), int(f.shape[-1])))
            src = self.input_proj[level](f).flatten(2).transpose(1, 2)  # [B*T, hw, D]
            pos = self.position_encoding(f, num_frames).flatten(2).transpose(1, 2).to(src.dtype)
            memories.append(
                (src + self.level_embed.weight[level]).reshape(batch, -1, self.dim)
            )  # [B, T*hw, D]
            memory_pos.append(pos.reshape(batch, -1, self.dim))
        for g in groups:
            if g.level_content is not None and len(g.level_content) != self.num_levels:
                raise ValueError(
                    f"{g.name}.level_content: expected {self.num_levels} levels, got {len(g.level_content)}"
                )
        per_level = [(stacked.slices[g.name], g.level_content) for g in groups if g.level_content is not None]
        regions = masks.group_regions(groups, stacked.slices, sizes, num_frames)
        shared = [(stacked.slices[g.name], g.segment_ids, g.union_from) for g in groups if g.union_by_segment]

        queries, query_pos = stacked.content, stacked.positional
        normed, logits = self.predict_masks(queries, mask_features, dense)
        all_queries, all_logits = [normed], [logits]
        for i, layer in enumerate(self.layers):
            level = i % self.num_levels
            cross_mask = masks.layer_cross_mask(logits, sizes[level], regions[level], shared, first=i == 0)
            if per_level:
                queries = self._reset_level_content(queries, per_level, level)
            queries = layer(
                queries,
                query_pos,
                memories[level],
                memory_pos[level],
                cross_mask,
                self_mask,
                stacked.cross_attends,
            )
            normed, logits = self.predict_masks(queries, mask_features, dense)
            all_queries.append(normed)
            all_logits.append(logits)
        return MaskDecoderOutput(queries=all_queries, mask_logits=all_logits, slices=stacked.slices)

    @staticmethod
    def _reset_level_content(
        queries: Tensor, per_level: list[tuple[slice, Sequence[Tensor]]], level: int
    ) -> Tensor:
        """The queries with each per-level group's content replaced by that of ``level``."""
        parts, start = [], 0
        for s, contents in sorted(per_level, key=lambda item: item[0].start):
            parts += [queries[:, start : s.start], contents[level].to(queries.dtype)]
            start = s.stop
        parts.append(queries[:, start:])
        return torch.cat(parts, dim=1)


def build_masked_attention_decoder(
    *,
    dim: int = 256,
    num_heads: int = 8,
    ffn_dim: int = 2048,
    num_layers: int = 9,
    in_channels: Sequence[int] = (256, 256, 256),
    mask_dim: int = 256,
    attention_backend: str = "auto",
) -> MaskedAttentionDecoder:
    """Build the decoder with Mask2Former's layout (defaults: paper scale).

    Args:
        dim: model width.
        num_heads: attention heads.
        ffn_dim: FFN hidden width.
        num_layers: decoder layers (``num_layers + 1`` predictions).
        in_channels: channels of the feature levels, low to high resolution.
        mask_dim: channels of the mask features.
        attention_backend: backend of :func:`segblocks.ops.masked_attention`.

    Returns:
        A :class:`MaskedAttentionDecoder`.
    """
    layers = [
        MaskedAttentionDecoderLayer(
            cross_attention=CrossAttentionLayer(dim=dim, num_heads=num_heads, backend=attention_backend),
            self_attention=SelfAttentionLayer(dim=dim, num_heads=num_heads, backend=attention_backend),
            ffn=FFNLayer(dim=dim, hidden_dim=ffn_dim),
        )
        for _ in range(num_layers)
    ]
    return MaskedAttentionDecoder(
        layers=layers,
        mask_head=MaskHead(dim=dim, mask_dim=mask_dim),
        dim=dim,
        in_channels=in_channels,
    )
