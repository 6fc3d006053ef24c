"""SEEM's visual sampler: any visual prompt, drawn as a region, becomes tokens read from every feature level.

Every visual prompt -- clicks, boxes, scribbles, polygons, masks, positive or negative -- is a binary
region (:mod:`segblocks.decoders.prompt_regions`). Up to ``num_points`` pixels are sampled across an
image's regions so that each region receives the same total probability (a 3 x 3 click weighs as
much as a large mask). With ``separate_clicks`` the pixels of clicks form regions of their own, so a
correction click inside a large stroke or mask keeps its share (SEEM ORs the click into the region,
where a 3 x 3 click in a 1,000-pixel polygon draws about one sample of 128). At each feature level a token is the feature bilinearly sampled at the pixel,
projected by that level's own linear layer, plus a positive or negative embedding; its position is a
sine code of the pixel's coordinates. The tokens form a query group that does not cross-attend to
the image (SEEM: prompt tokens are attended to, never attend to the image) and whose content the
decoder resets to the level each layer reads (``QueryGroup.level_content``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim, check_shape
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule
from segblocks.layers.position_encoding import sine_ladder
from segblocks.ops import point_sample

__all__ = ["PromptPoints", "VisualSampler", "point_position_code", "sample_prompt_points"]


@dataclass
class PromptPoints:
    """Pixels sampled from the prompt regions of a batch, padded to ``T`` per image.

    Attributes:
        coords: ``[B, T, 2]`` float normalised ``(x, y)`` in ``[0, 1]`` (pixel centres).
        prompt_ids: ``[B, T]`` int64 index of the prompt (object) each point belongs to.
        positive: ``[B, T]`` bool, True for a point of a positive region.
        valid: ``[B, T]`` bool, False for padding.
    """

    coords: Tensor
    prompt_ids: Tensor
    positive: Tensor
    valid: Tensor


def _check_regions(positive: Tensor, negative: Tensor) -> None:
    check_ndim("positive", positive, 4, "[B, P, H, W]")
    check_dtype("positive", positive, "bool")
    check_shape("negative", negative, tuple(positive.shape), "[B, P, H, W] like positive")
    check_dtype("negative", negative, "bool")


def sample_prompt_points(
    positive: Tensor,
    negative: Tensor,
    num_points: int,
    *,
    clicks: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PromptPoints:
    """Sample up to ``num_points`` pixels per image, each non-empty region with equal total probability.

    Regions are the positive and the negative region of every prompt; a pixel of region ``r`` is
    drawn with probability ``1 / (R * |r|)`` (``R`` non-empty regions), without replacement. With
    ``clicks``, a prompt's clicked pixels are taken out of its positive and negative regions and form
    two regions of their own (positive clicks, negative clicks), so clicks added to a large stroke or
    mask are not drowned by it.

    Args:
        positive: ``[B, P, H, W]`` bool positive regions (P prompts, padding prompts empty).
        negative: ``[B, P, H, W]`` bool negative regions.
        num_points: the most points per image (SEEM: 512).
        clicks: ``[B, P, H, W]`` bool pixels of clicks (inside ``positive`` or ``negative``), or None
            (every region as it is; the same draw as before this option).
        generator: random generator (on the regions' device) for reproducible sampling.

    Returns:
        :class:`PromptPoints` with ``T = max points drawn in an image`` (at least 1).

    Raises:
        ValueError: on bad shapes or a non-positive ``num_points``.
        TypeError: on regions or a click map that are not bool.
    """
    _check_regions(positive, negative)
    if clicks is not None:
        check_shape("clicks", clicks, tuple(positive.shape), "[B, P, H, W] like positive")
        check_dtype("clicks", clicks, "bool")
    if num_points <= 0:
        raise ValueError(f"num_points: expected a positive int, got {num_points}")
    b, p, h, w = positive.shape
    device = positive.device
    per_image = []
    for i in range(b):
        parts = [positive[i], negative[i]]
        if clicks is not None and bool(
            clicks[i].any()
        ):  # [pos \ clicks, neg \ clicks, pos clicks, neg clicks]
            parts = [
                positive[i] & ~clicks[i],
                negative[i] & ~clicks[i],
                positive[i] & clicks[i],
                negative[i] & clicks[i],
            ]
        regions = torch.cat(parts).flatten(1).float()  # [2P or 4P, HW]
        area = regions.sum(1, keepdim=True)
        probs = (regions / area.clamp_min(1.0)).flatten()
        count = min(num_points, int(regions.count_nonzero()))
        if count == 0:
            per_image.append(torch.zeros(0, dtype=torch.int64, device=device))
            continue
        per_image.append(torch.multinomial(probs, count, replacement=False, generator=generator))
    t = max(1, max(len(x) for x in per_image))
    coords = torch.zeros(b, t, 2, device=device)
    prompt_ids = torch.zeros(b, t, dtype=torch.int64, device=device)
    pos = torch.zeros(b, t, dtype=torch.bool, device=device)
    valid = torch.zeros(b, t, dtype=torch.bool, device=device)
    for i, flat in enumerate(per_image):
        n = len(flat)
        region, pixel = flat // (h * w), flat % (h * w)
        coords[i, :n, 0] = ((pixel % w).float() + 0.5) / w
        coords[i, :n, 1] = ((pixel // w).float() + 0.5) / h
        prompt_ids[i, :n] = region % p
        pos[i, :n] = (region // p) % 2 == 0  # positive blocks are even: pos, neg, pos clicks, neg clicks
        valid[i, :n] = True
    return PromptPoints(coords=coords, prompt_ids=prompt_ids, positive=pos, valid=valid)


def point_position_code(coords: Tensor, dim: int) -> Tensor:
    """Sine code of normalised points: ``[..., 2]`` -> ``[..., dim]`` (``dim / 2`` channels per axis).

    Args:
        coords: ``[..., 2]`` ``(x, y)`` in ``[0, 1]``.
        dim: output channels, a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"dim: expected a multiple of 4, got {dim}")
    scaled = coords.float() * 2 * math.pi
    return torch.cat([sine_ladder(scaled[..., 1], dim // 2), sine_ladder(scaled[..., 0], dim // 2)], dim=-1)


class VisualSampler(nn.Module):
    """Visual prompt regions -> per-level prompt tokens (SEEM's visual sampler, Algorithm 1).

    Args:
        in_channels: channels of each feature level the decoder reads, low to high resolution.
        dim: decoder width ``D``.
        num_points: the most sampled pixels per image (SEEM: 512).
        separate_clicks: sample clicks as regions of their own (:func:`sample_prompt_points`'s
            ``clicks``); False: clicks are part of their region, as in SEEM.
    """

    def __init__(
        self, *, in_channels: Sequence[int], dim: int, num_points: int = 512, separate_clicks: bool = False
    ) -> None:
        super().__init__()
        if len(in_channels) == 0:
            raise ValueError("in_channels: expected at least one feature level")
        if num_points <= 0:
            raise ValueError(f"num_points: expected a positive int, got {num_points}")
        if dim % 4:
            raise ValueError(f"dim: expected a multiple of 4, got {dim}")
        self.dim = dim
        self.num_points = num_points
        self.separate_clicks = bool(separate_clicks)
        self.in_channels = tuple(in_channels)
        self.level_proj = nn.ModuleList(nn.Linear(c, dim) for c in in_channels)  # SEEM: 512 x 512 per level
        self.polarity = nn.Embedding(2, dim)  # 0 negative, 1 positive

    def sample(
        self,
        positive: Tensor,
        negative: Tensor,
        generator: torch.Generator | None = None,
        clicks: Tensor | None = None,
    ) -> PromptPoints:
        """The sampled pixels (see :func:`sample_prompt_points`).

        Args:
            positive: ``[B, P, H, W]`` bool positive regions.
            negative: ``[B, P, H, W]`` bool negative regions.
            generator: random generator for the sampling.
            clicks: ``[B, P, H, W]`` bool pixels of clicks, or None; used with ``separate_clicks``.
        """
        return sample_prompt_points(
            positive,
            negative,
            self.num_points,
            clicks=clicks if self.separate_clicks else None,
            generator=generator,
        )

    def forward(
        self,
        features: Sequence[Tensor],
        positive: Tensor,
        negative: Tensor,
        *,
        name: str = "spatial_tokens",
        generator: torch.Generator | None = None,
        clicks: Tensor | None = None,
    ) -> tuple[QueryGroup, PromptPoints]:
        """Prompt tokens of every level as a query group.

        Args:
            features: ``L`` maps ``[B, C_l, H_l, W_l]`` (the decoder's levels, low to high resolution).
            positive: ``[B, P, H, W]`` bool positive regions at the image size.
            negative: ``[B, P, H, W]`` bool negative regions.
            name: the group's name.
            generator: random generator for the sampling.
            clicks: ``[B, P, H, W]`` bool pixels of clicks (their own regions with ``separate_clicks``).

        Returns:
            ``(group, points)``: the group ``[B, T, D]`` (``level_content`` per level, positions,
            ``segment_ids`` = prompt index, ``valid``; no cross-attention; self-attention within
            its prompt) and the sampled :class:`PromptPoints`.

        Raises:
            ValueError: on a wrong number of levels or channels, or bad regions.
        """
        if len(features) != len(self.level_proj):
            raise ValueError(f"features: expected {len(self.level_proj)} levels, got {len(features)}")
        for i, (f, c) in enumerate(zip(features, self.in_channels)):
            check_ndim(f"features[{i}]", f, 4, "[B, C, H, W]")
            if f.shape[1] != c or f.shape[0] != positive.shape[0]:
                raise ValueError(
                    f"features[{i}]: expected ({positive.shape[0]}, {c}, H, W), got {tuple(f.shape)}"
                )
        points = self.sample(positive, negative, generator, clicks)
        polarity = self.polarity(points.positive.long())  # [B, T, D]
        levels = []
        for f, proj in zip(features, self.level_proj):
            sampled = point_sample(f, points.coords.to(f.dtype)).transpose(1, 2)  # [B, T, C]
            levels.append(proj(sampled) + polarity)
        positional = point_position_code(points.coords, self.dim).to(levels[0].dtype)
        group = QueryGroup(
            name=name,
            content=levels[0],
            positional=positional,
            self_attention=SelfAttentionRule.same_segment(),
            cross_attends=False,
            segment_ids=points.prompt_ids,
            valid=points.valid,
            level_content=levels,
        )
        return group, points
