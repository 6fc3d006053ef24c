"""Uni-OVSeg's visual prompt encoder: points and boxes as anchor boxes, several tokens per prompt.

A point becomes a small anchor box ``[x - s/2, y - s/2, x + s/2, y + s/2]`` (the released code: 4 px
at 1024); a box prompt is its own anchor box. Each of the anchor box's two corners becomes a token:

    corner token = RFF(corner) + corner embedding (top-left / bottom-right)
                   + type embedding (point / box) + content + attribute (positive / negative; points only)

where RFF is the random-Fourier code shared with the image position encoding and *content* is the
mask feature sampled at the box centre. After the two corner tokens come ``1 + k`` learned output
tokens (one single-mask token, ``k = 4`` multi-granularity tokens), so every prompt has ``T = 3 + k``
tokens laid out ``[corner_tl, corner_br, single, multi_1 .. multi_k]``. A point answers with the
``k`` multi-granularity tokens, a box with the single-mask token (as in the released code).

The tokens of one prompt form one segment: they attend only to each other in self-attention, and
cross-attend under the union of the prompt's answering tokens' predicted masks
(:class:`~segblocks.decoders.QueryGroup` ``segment_ids``, ``union_by_segment``, ``union_from``).
Their positional embedding is their initial embedding (the released code passes it twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks._validation import check_ndim
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.layers.mask_head import MaskHead
from segblocks.layers.mlp import MLP
from segblocks.layers.random_fourier import RandomFourierPositionEncoding
from segblocks.structures import Prompts

__all__ = ["MultiGranularityPromptEncoder", "PromptTokenMaskHead", "PromptTokens", "anchor_boxes"]


def anchor_boxes(
    prompts: Prompts, image_size: tuple[int, int], point_box_size: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One image's point and box prompts as anchor boxes, points first.

    Args:
        prompts: one image's prompts: ``points [N, 1, 2]`` (one click a prompt, label 1 positive or 0
            negative) and/or ``boxes [M, 4]``.
        image_size: ``(H, W)`` of the image the coordinates refer to.
        point_box_size: side in pixels of the anchor box a click becomes.

    Returns:
        ``(boxes [N + M, 4] (x1, y1, x2, y2) in pixels, is_box [N + M] bool, positive [N + M] bool)``.

    Raises:
        ValueError: on a prompt with several clicks, a click or box outside the image, or no point
            and no box prompt.
    """
    h, w = image_size
    boxes, kinds, positive = [], [], []
    if prompts.points is not None and prompts.point_labels is not None:
        if prompts.points.shape[1] != 1 or bool((prompts.point_labels < 0).any()):
            raise ValueError(
                "prompts.points: the Uni-OVSeg prompt encoder takes one click a prompt (points [N, 1, 2]), "
                f"got points {tuple(prompts.points.shape)}"
            )
        xy = prompts.points[:, 0].float()
        outside = (xy[:, 0] < 0) | (xy[:, 0] > w) | (xy[:, 1] < 0) | (xy[:, 1] > h)
        if bool(outside.any()):
            raise ValueError(
                f"prompts.points: point(s) {outside.nonzero()[:, 0].tolist()} lie outside the {h}x{w} image"
            )
        half = point_box_size / 2
        boxes.append(torch.cat([xy - half, xy + half], dim=1))
        kinds.append(torch.zeros(len(xy), dtype=torch.bool))
        positive.append(prompts.point_labels[:, 0].cpu() == 1)
    if prompts.boxes is not None:
        b = prompts.boxes.float()
        outside = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > w) | (b[:, 3] > h)
        if bool(outside.any()):
            raise ValueError(
                f"prompts.boxes: box(es) {outside.nonzero()[:, 0].tolist()} lie outside the {h}x{w} image"
            )
        boxes.append(b)
        kinds.append(torch.ones(len(b), dtype=torch.bool))
        positive.append(torch.ones(len(b), dtype=torch.bool))
    if not boxes:
        raise ValueError("prompts: the Uni-OVSeg prompt encoder needs point or box prompts, got neither")
    return torch.cat([b.to(boxes[0].device) for b in boxes]), torch.cat(kinds), torch.cat(positive)


@dataclass
class PromptTokens:
    """The prompt encoder's output for a batch.

    Attributes:
        group: the :class:`~segblocks.decoders.QueryGroup` ``"prompt"`` of ``[B, P * T, D]`` tokens.
        num_prompts: per image, its number of real prompts (``<= P``; the rest is padding).
        is_box: ``[B, P]`` bool, True for box prompts (answered by the single-mask token).
        tokens_per_prompt: ``T``.
    """

    group: QueryGroup
    num_prompts: list[int]
    is_box: Tensor
    tokens_per_prompt: int


class MultiGranularityPromptEncoder(nn.Module):
    """Points and boxes -> Uni-OVSeg prompt tokens (two corner tokens + ``1 + k`` output tokens each).

    Args:
        dim: token width ``D``.
        position_encoding: the random-Fourier code of corners (share the decoder's image encoding).
        point_box_size: side in pixels of a click's anchor box (released code: 4 at 1024 px).
        num_multimask: ``k`` multi-granularity output tokens (4).
        content_dim: channels of the mask features the content is sampled from (default ``D``;
            otherwise a linear projection maps them to ``D``).
    """

    CORNERS = 2

    def __init__(
        self,
        *,
        dim: int,
        position_encoding: RandomFourierPositionEncoding,
        point_box_size: float = 4.0,
        num_multimask: int = 4,
        content_dim: int | None = None,
    ) -> None:
        super().__init__()
        if dim <= 0:
            raise ValueError(f"dim: expected a positive int, got {dim}")
        if position_encoding.dim != dim:
            raise ValueError(f"position_encoding: expected width {dim}, got {position_encoding.dim}")
        if not point_box_size > 0:
            raise ValueError(f"point_box_size: expected a positive size in pixels, got {point_box_size}")
        if num_multimask < 1:
            raise ValueError(f"num_multimask: expected an int >= 1, got {num_multimask}")
        self.dim = dim
        self.point_box_size = float(point_box_size)
        self.num_multimask = num_multimask
        self.pos_emb = position_encoding
        self.corner_emb = nn.Parameter(torch.randn(self.CORNERS, dim))
        self.point_emb = nn.Parameter(torch.randn(dim))
        self.box_emb = nn.Parameter(torch.randn(dim))
        self.attr_emb = nn.Embedding(2, dim)  # 0 negative, 1 positive
        nn.init.normal_(self.attr_emb.weight)
        self.mask_emb = nn.Parameter(torch.randn(1 + num_multimask, dim))  # single, then multi
        content_dim = dim if content_dim is None else content_dim
        self.content_proj = nn.Identity() if content_dim == dim else nn.Linear(content_dim, dim)
        self.content_dim = content_dim

    @property
    def tokens_per_prompt(self) -> int:
        """``T = 2 + 1 + k``."""
        return self.CORNERS + 1 + self.num_multimask

    def answer_slots(self, is_box: bool) -> list[int]:
        """Token slots that answer a prompt: ``[2]`` for a box, ``[3 .. 2 + k]`` for a point.

        Args:
            is_box: the prompt is a box (else a point).
        """
        first = self.CORNERS
        return [first] if is_box else list(range(first + 1, first + 1 + self.num_multimask))

    def forward(
        self, prompts: Sequence[Prompts], image_size: tuple[int, int], mask_features: Tensor
    ) -> PromptTokens:
        """Tokens of every image's prompts, padded to the batch's largest prompt count.

        Args:
            prompts: B :class:`~segblocks.structures.Prompts` (points first, then boxes, per image).
            image_size: ``(H, W)`` of the (unpadded) images the coordinates refer to.
            mask_features: ``[B, C, h, w]`` per-pixel features covering that image (stride 4); the
                content of a prompt is sampled at its box centre.

        Returns:
            :class:`PromptTokens`.

        Raises:
            ValueError: on no images, bad prompts (see :func:`anchor_boxes`), a bad ``image_size`` or
                mask features of the wrong batch or width.
            TypeError: on an element that is not :class:`Prompts`.
        """
        if len(prompts) == 0:
            raise ValueError("prompts: expected one Prompts per image, got none")
        h, w = image_size
        if h <= 0 or w <= 0:
            raise ValueError(f"image_size: expected a positive (H, W), got {image_size}")
        check_ndim("mask_features", mask_features, 4, "[B, C, h, w]")
        if mask_features.shape[0] != len(prompts) or mask_features.shape[1] != self.content_dim:
            raise ValueError(
                f"mask_features: expected [B={len(prompts)}, C={self.content_dim}, h, w], "
                f"got {tuple(mask_features.shape)}"
            )
        per_image = []
        for i, p in enumerate(prompts):
            if not isinstance(p, Prompts):
                raise TypeError(f"prompts[{i}]: expected Prompts, got {type(p).__name__}")
            per_image.append(anchor_boxes(p, image_size, self.point_box_size))
        device = self.mask_emb.device
        b, n = len(prompts), max(len(k) for _, k, _ in per_image)
        boxes = torch.zeros(b, n, 4, device=device)
        is_box = torch.zeros(b, n, dtype=torch.bool, device=device)
        positive = torch.ones(b, n, dtype=torch.long, device=device)
        valid = torch.zeros(b, n, dtype=torch.bool, device=device)
        for i, (bx, kind, pos) in enumerate(per_image):
            m = len(bx)
            boxes[i, :m], is_box[i, :m], positive[i, :m], valid[i, :m] = (
                bx.to(device),
                kind.to(device),
                pos.to(device).long(),
                True,
            )
        corners = boxes.reshape(b, n, 2, 2)  # [B, N, 2 corners, (x, y)]
        rff = self.pos_emb.encode_points(corners, image_size)  # [B, N, 2, D]
        centres = (corners.mean(dim=2) / corners.new_tensor([w, h])).clamp(0, 1)  # [B, N, 2]
        feats = F.grid_sample(
            mask_features.float(), (2 * centres - 1)[:, :, None], mode="bilinear", align_corners=False
        )[..., 0].transpose(1, 2)  # [B, N, C]
        content = self.content_proj(feats.to(self.mask_emb.dtype))
        kind = torch.where(is_box[..., None], self.box_emb, self.point_emb)  # [B, N, D]
        attr = torch.where(is_box[..., None], 0.0, self.attr_emb(positive))
        corner_tokens = rff.to(content.dtype) + self.corner_emb + (kind + content + attr)[:, :, None]
        outputs = self.mask_emb.expand(b, n, -1, -1)
        tokens = torch.cat([corner_tokens, outputs], dim=2)  # [B, N, T, D]
        t = self.tokens_per_prompt
        segment = torch.arange(n, device=device).repeat_interleave(t)[None].expand(b, -1)
        answers = torch.zeros(b, n, t, dtype=torch.bool, device=device)
        answers[..., self.CORNERS] = is_box
        answers[..., self.CORNERS + 1 :] = ~is_box[..., None]
        flat = tokens.reshape(b, n * t, self.dim)
        group = QueryGroup(
            name="prompt",
            content=flat,
            positional=flat,
            self_attention=SelfAttentionRule.same_segment(),
            segment_ids=segment.contiguous(),
            valid=valid.repeat_interleave(t, dim=1),
            union_by_segment=True,
            union_from=answers.reshape(b, n * t),
        )
        return PromptTokens(
            group=group, num_prompts=[len(k) for _, k, _ in per_image], is_box=is_box, tokens_per_prompt=t
        )


class PromptTokenMaskHead(MaskHead):
    """Masks of prompt tokens with one MLP per output slot (Uni-OVSeg: 5 mask MLPs).

    Tokens are laid out prompt after prompt, ``T`` tokens each (see
    :class:`MultiGranularityPromptEncoder`). Output slot ``j`` (token ``2 + j``) uses MLP ``j``; the
    corner tokens use MLP 0 (their masks only steer their own cross-attention and are never read).

    Args:
        dim: query width ``D``.
        mask_dim: channels of the mask features.
        tokens_per_prompt: ``T``.
        num_outputs: output slots ``1 + k`` (5).
        num_layers: MLP depth (3).
    """

    def __init__(
        self, *, dim: int, mask_dim: int, tokens_per_prompt: int, num_outputs: int, num_layers: int = 3
    ) -> None:
        nn.Module.__init__(self)
        if num_outputs < 1 or tokens_per_prompt < num_outputs:
            raise ValueError(
                f"tokens_per_prompt, num_outputs: expected 1 <= num_outputs <= tokens_per_prompt, "
                f"got {tokens_per_prompt} and {num_outputs}"
            )
        self.dim = dim
        self.mask_dim = mask_dim
        self.tokens_per_prompt = tokens_per_prompt
        self.num_outputs = num_outputs
        self.mlps = nn.ModuleList(
            MLP(in_dim=dim, hidden_dim=dim, out_dim=mask_dim, num_layers=num_layers)
            for _ in range(num_outputs)
        )
        first = tokens_per_prompt - num_outputs
        self.register_buffer(
            "slot_mlp", torch.tensor([0] * first + list(range(num_outputs))), persistent=False
        )

    slot_mlp: Tensor

    def embed(self, queries: Tensor) -> Tensor:
        """Mask embeddings ``[B, Q, mask_dim]`` of prompt tokens (``Q`` a multiple of ``T``).

        Args:
            queries: ``[B, Q, D]`` normalised prompt tokens, prompt after prompt.

        Raises:
            ValueError: when ``Q`` is not a multiple of ``T``.
        """
        b, q, _ = queries.shape
        t = self.tokens_per_prompt
        if q % t:
            raise ValueError(f"queries: {q} tokens are not a multiple of tokens_per_prompt={t}")
        tokens = queries.reshape(b, q // t, t, -1)
        out = torch.stack(
            [self.mlps[int(j)](tokens[:, :, s]) for s, j in enumerate(self.slot_mlp.tolist())], dim=2
        )
        return out.reshape(b, q, -1)
