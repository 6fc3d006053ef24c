"""SEEM's prompt-side query groups: spatial queries, memory prompts and text-prompt tokens.

For ``P`` prompts (objects) of an image:

* **spatial queries** -- ``k`` learned candidate queries per prompt (SEEM: 3). They cross-attend to
  the image like object queries and self-attend to their own prompt's visual tokens, text tokens and
  memory prompts (``segment_ids`` = prompt index). The answer to a prompt is chosen among its
  candidates (:func:`select_candidates`).
* **memory prompts** -- ``m`` learned tokens per prompt carrying the previous round's mask: they
  cross-attend under that mask in every layer (``fixed_cross_mask``) and self-attend only with their
  prompt's memory tokens and spatial queries. In the first round (no previous mask) the empty mask
  lets them attend everywhere.
* **dense memory** (an option, not SEEM's) -- the previous round's mask embedded by a few strided
  convolutions into a per-prompt map added to the mask features for that prompt's candidates
  (``QueryGroup.dense_prompt``), as SAM adds its mask prompt to the image embedding.
* **text tokens** -- the frozen CLIP text encoder's per-token features of a prompt's text, projected
  to the decoder's width; attended to (SEEM's grounding), never cross-attending, self-attending
  within their text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks._validation import check_dtype, check_ndim, check_shape
from segblocks.decoders.query_groups import AttendTo, QueryGroup, SelfAttentionRule
from segblocks.ops import point_sample

__all__ = [
    "DenseMaskPrompt",
    "MemoryPrompts",
    "SpatialQueries",
    "TextPromptTokens",
    "pool_at_points",
    "select_candidates",
]


def _prompt_ids(batch: int, prompts: int, per_prompt: int, device: torch.device) -> Tensor:
    """``[B, P * k]`` prompt index of each of the ``k`` consecutive queries of a prompt."""
    return torch.arange(prompts, device=device).repeat_interleave(per_prompt)[None].expand(batch, -1)


def _check_prompt_valid(prompt_valid: Tensor) -> None:
    check_ndim("prompt_valid", prompt_valid, 2, "[B, P]")
    check_dtype("prompt_valid", prompt_valid, "bool")


class SpatialQueries(nn.Module):
    """``k`` learned candidate queries per prompt (SEEM's spatial / grounding queries).

    Args:
        dim: decoder width ``D``.
        per_prompt: candidates per prompt ``k`` (SEEM: 3).
    """

    def __init__(self, *, dim: int, per_prompt: int = 3) -> None:
        super().__init__()
        if per_prompt < 1:
            raise ValueError(f"per_prompt: expected an int >= 1, got {per_prompt}")
        self.per_prompt = per_prompt
        self.content = nn.Embedding(per_prompt, dim)
        self.position = nn.Embedding(per_prompt, dim)

    def forward(
        self, prompt_valid: Tensor, attend_to: tuple[str, ...], *, name: str = "spatial"
    ) -> QueryGroup:
        """The spatial queries of a batch as a query group ``[B, P * k, D]``.

        Args:
            prompt_valid: ``[B, P]`` bool, False for padding prompts.
            attend_to: names of the groups whose same-prompt members they self-attend to
                (``"spatial_tokens"``, ``"text_tokens"``, ``"memory"``: whichever are present).
            name: the group's name.
        """
        _check_prompt_valid(prompt_valid)
        b, p = prompt_valid.shape
        k = self.per_prompt
        content = self.content.weight.repeat(p, 1)[None].expand(b, -1, -1)
        position = self.position.weight.repeat(p, 1)[None].expand(b, -1, -1)
        return QueryGroup(
            name=name,
            content=content,
            positional=position,
            self_attention=SelfAttentionRule.same_segment(*attend_to),
            segment_ids=_prompt_ids(b, p, k, prompt_valid.device),
            valid=prompt_valid.repeat_interleave(k, dim=1),
        )


class MemoryPrompts(nn.Module):
    """``m`` learned memory tokens per prompt that carry the previous round's mask.

    Args:
        dim: decoder width ``D``.
        per_prompt: memory tokens per prompt (SEEM: 32 shared by the image's prompts).
    """

    def __init__(self, *, dim: int, per_prompt: int = 8) -> None:
        super().__init__()
        if per_prompt < 1:
            raise ValueError(f"per_prompt: expected an int >= 1, got {per_prompt}")
        self.per_prompt = per_prompt
        self.content = nn.Embedding(per_prompt, dim)
        self.position = nn.Embedding(per_prompt, dim)

    def forward(
        self, previous: Tensor, prompt_valid: Tensor, *, spatial: str = "spatial", name: str = "memory"
    ) -> QueryGroup:
        """The memory prompts as a query group ``[B, P * m, D]`` under a fixed cross-attention mask.

        Args:
            previous: ``[B, P, H, W]`` bool previous-round mask of each prompt (all False: none yet).
            prompt_valid: ``[B, P]`` bool, False for padding prompts.
            spatial: name of the spatial-query group they self-attend with.
            name: the group's name.

        Raises:
            ValueError: on shapes that do not fit.
        """
        _check_prompt_valid(prompt_valid)
        check_ndim("previous", previous, 4, "[B, P, H, W]")
        check_dtype("previous", previous, "bool")
        b, p = prompt_valid.shape
        check_shape("previous", previous, (b, p, None, None), f"[B={b}, P={p}, H, W]")
        m = self.per_prompt
        return QueryGroup(
            name=name,
            content=self.content.weight.repeat(p, 1)[None].expand(b, -1, -1),
            positional=self.position.weight.repeat(p, 1)[None].expand(b, -1, -1),
            self_attention=SelfAttentionRule(
                attend_to=(AttendTo(same_segment=True), AttendTo(spatial, same_segment=True))
            ),
            segment_ids=_prompt_ids(b, p, m, prompt_valid.device),
            valid=prompt_valid.repeat_interleave(m, dim=1),
            cross_mask=previous.repeat_interleave(m, dim=1),
            fixed_cross_mask=True,
        )


class DenseMaskPrompt(nn.Module):
    """The previous round's mask of each prompt as a dense map in the mask features' space.

    SAM's mask-prompt encoder: the mask, resized to 4x the mask features' resolution, goes through
    two 2x2 stride-2 convolutions (GELU after each) and a 1x1 projection to the mask features'
    channels. The projection starts at zero, so a model starts as without it.

    Args:
        mask_dim: channels ``C`` of the mask features.
        hidden: channels of the two strided convolutions (SAM: 4 and 16).
    """

    def __init__(self, *, mask_dim: int, hidden: tuple[int, int] = (4, 16)) -> None:
        super().__init__()
        if mask_dim < 1 or min(hidden) < 1:
            raise ValueError(f"mask_dim, hidden: expected positive channel counts, got {mask_dim}, {hidden}")
        self.mask_dim = mask_dim
        first = nn.Conv2d(1, hidden[0], kernel_size=2, stride=2)
        projection = nn.Conv2d(hidden[1], mask_dim, kernel_size=1)
        nn.init.zeros_(projection.weight)
        nn.init.zeros_(projection.bias)  # type: ignore[arg-type]  # (it has one: bias=True)
        self.encoder = nn.Sequential(
            first,
            nn.GELU(),
            nn.Conv2d(hidden[0], hidden[1], kernel_size=2, stride=2),
            nn.GELU(),
            projection,
        )

    def forward(self, previous: Tensor, size: tuple[int, int]) -> Tensor:
        """Embed each prompt's previous mask.

        Args:
            previous: ``[B, P, H, W]`` bool previous-round mask of each prompt (all False: none yet).
            size: ``(h, w)`` of the mask features.

        Returns:
            ``[B, P, C, h, w]``, the ``dense_prompt`` of the prompts' candidate queries.

        Raises:
            ValueError, TypeError: on a wrong rank, dtype or size.
        """
        check_ndim("previous", previous, 4, "[B, P, H, W]")
        check_dtype("previous", previous, "bool")
        h, w = int(size[0]), int(size[1])
        if h < 1 or w < 1:
            raise ValueError(f"size: expected a positive (h, w), got {size}")
        b, p = previous.shape[:2]
        dtype = next(self.encoder.parameters()).dtype
        masks = F.interpolate(previous.flatten(0, 1)[:, None].to(dtype), size=(4 * h, 4 * w), mode="area")
        return self.encoder(masks).unflatten(0, (b, p))


class TextPromptTokens(nn.Module):
    """Per-token CLIP text features of the prompts' texts -> a token group the spatial queries read.

    Args:
        text_dim: width ``E`` of the text encoder's (projected) token features.
        dim: decoder width ``D``.
    """

    def __init__(self, *, text_dim: int, dim: int) -> None:
        super().__init__()
        self.text_dim = text_dim
        self.proj = nn.Linear(text_dim, dim)
        self.type_embedding = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: Tensor, valid: Tensor, *, name: str = "text_tokens") -> QueryGroup:
        """The text tokens of a batch's prompts as a query group ``[B, P * L, D]``.

        Args:
            tokens: ``[B, P, L, E]`` token features of each prompt's text (zeros where none).
            valid: ``[B, P, L]`` bool, True for a real token of a prompt that has a text.
            name: the group's name.

        Raises:
            ValueError: on shapes that do not fit.
        """
        check_ndim("tokens", tokens, 4, "[B, P, L, E]")
        check_dtype("tokens", tokens, "floating")
        b, p, length, e = tokens.shape
        if e != self.text_dim:
            raise ValueError(f"tokens: expected width E={self.text_dim}, got {tuple(tokens.shape)}")
        check_shape("valid", valid, (b, p, length), f"[B={b}, P={p}, L={length}]")
        content = self.proj(tokens.flatten(1, 2)) + self.type_embedding
        position = torch.zeros_like(content)
        return QueryGroup(
            name=name,
            content=content,
            positional=position,
            self_attention=SelfAttentionRule.same_segment(),
            cross_attends=False,
            segment_ids=_prompt_ids(b, p, length, tokens.device),
            valid=valid.flatten(1, 2),
        )


def pool_at_points(
    mask_features: Tensor, coords: Tensor, prompt_ids: Tensor, weight: Tensor, num_prompts: int
) -> tuple[Tensor, Tensor]:
    """Mean mask feature of each prompt over its (positive) sampled points (SEEM's pooled prompt vector).

    Args:
        mask_features: ``[B, C, H, W]`` per-pixel embeddings.
        coords: ``[B, T, 2]`` normalised ``(x, y)`` points.
        prompt_ids: ``[B, T]`` int64 prompt index of each point.
        weight: ``[B, T]`` bool, the points that count (positive and valid).
        num_prompts: ``P``.

    Returns:
        ``(pooled [B, P, C], has_points [B, P] bool)``; prompts without points get zeros.
    """
    sampled = point_sample(mask_features, coords.to(mask_features.dtype)).transpose(1, 2)  # [B, T, C]
    onehot = F.one_hot(prompt_ids.clamp(0, num_prompts - 1), num_prompts).to(sampled.dtype)
    onehot = onehot * weight[..., None].to(sampled.dtype)  # [B, T, P]
    counts = onehot.sum(1)  # [B, P]
    pooled = torch.einsum("btp,btc->bpc", onehot, sampled) / counts.clamp_min(1.0)[..., None]
    return pooled, counts > 0


def select_candidates(scores: Tensor, per_prompt: int) -> Tensor:
    """Index of the best of each prompt's ``k`` candidates (other prompts' candidates never compete).

    Args:
        scores: ``[B, P * k]`` candidate scores, the ``k`` candidates of a prompt consecutive.
        per_prompt: ``k``.

    Returns:
        ``[B, P]`` int64 candidate index in ``[0, k)``.
    """
    check_ndim("scores", scores, 2, "[B, P * k]")
    if per_prompt < 1 or scores.shape[1] % per_prompt:
        raise ValueError(f"per_prompt: {scores.shape[1]} scores are not a multiple of k={per_prompt}")
    return scores.unflatten(1, (-1, per_prompt)).argmax(dim=-1)
