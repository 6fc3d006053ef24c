"""Promptable predictions to per-prompt results: one or several masks per prompt, with scores.

A promptable decoder (SAM, OMG-Seg's location queries, Uni-OVSeg, SEEM's spatial queries) answers
each prompt with ``K`` outputs laid out prompt after prompt (``K = 1`` single-mask, ``K = 4``
Uni-OVSeg's granularities, SAM's 3). The result keeps every output, its score and which output is
best, so a caller asks for one mask a prompt or the multi-mask answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim, check_shape
from segblocks.inference.padding import unpad_mask_logits

__all__ = ["PromptPrediction", "postprocess_prompts"]


@dataclass
class PromptPrediction:
    """The answers to the prompts of one image.

    Attributes:
        masks: ``[N, K, H, W]`` bool, ``K`` candidate masks for each of the ``N`` prompts.
        scores: ``[N, K]`` float in ``[0, 1]`` (predicted IoU, or 1 where the model scores nothing).
        mask_logits: ``[N, K, H, W]`` float logits at the image size (for the next round's prompt).
    """

    masks: Tensor
    scores: Tensor
    mask_logits: Tensor

    def __post_init__(self) -> None:
        check_ndim("masks", self.masks, 4, "[N, K, H, W]")
        check_dtype("masks", self.masks, "bool")
        n, k = self.masks.shape[:2]
        check_shape("scores", self.scores, (n, k), f"[N={n}, K={k}]")
        check_shape("mask_logits", self.mask_logits, tuple(self.masks.shape), "[N, K, H, W]")

    @property
    def best(self) -> Tensor:
        """``[N]`` int64: index of the best-scored output of each prompt."""
        return self.scores.argmax(dim=1)

    @property
    def best_masks(self) -> Tensor:
        """``[N, H, W]`` bool: the best-scored mask of each prompt."""
        return self.masks[torch.arange(self.masks.shape[0]), self.best]


def postprocess_prompts(
    mask_logits: Tensor,
    scores: Tensor | None,
    *,
    num_prompts: Sequence[int],
    outputs_per_prompt: int = 1,
    padded: tuple[int, int],
    image_sizes: Sequence[tuple[int, int]],
    mask_threshold: float = 0.0,
) -> list[PromptPrediction]:
    """Per-prompt masks at each image's size.

    Args:
        mask_logits: ``[B, P * K, h, w]`` logits of the padded batch, ``K`` outputs per prompt,
            prompts padded to the batch's largest count ``P``.
        scores: ``[B, P * K]`` IoU / objectness logits (sigmoid gives the score), or None.
        num_prompts: per image, its number of real prompts ``N_b <= P``.
        outputs_per_prompt: ``K``.
        padded: ``(H', W')`` of the padded input.
        image_sizes: per image ``(H, W)`` of the valid region.
        mask_threshold: logit above which a pixel is in the mask (SAM: 0).

    Returns:
        One :class:`PromptPrediction` per image.

    Raises:
        ValueError: on shapes that do not fit together.
    """
    check_ndim("mask_logits", mask_logits, 4, "[B, P * K, h, w]")
    b, q = mask_logits.shape[:2]
    k = outputs_per_prompt
    if k < 1 or q % k:
        raise ValueError(f"outputs_per_prompt: {q} outputs are not a multiple of K={k}")
    if scores is not None:
        check_shape("scores", scores, (b, q), f"[B={b}, P * K={q}]")
    if len(num_prompts) != b or len(image_sizes) != b:
        raise ValueError(
            f"num_prompts, image_sizes: expected {b} entries each, got {len(num_prompts)} and {len(image_sizes)}"
        )
    if any(not 0 <= n <= q // k for n in num_prompts):
        raise ValueError(f"num_prompts: expected counts in [0, {q // k}], got {list(num_prompts)}")
    results = []
    for i, (n, size) in enumerate(zip(num_prompts, image_sizes)):
        if n == 0:
            logits = mask_logits.new_zeros(0, k, *size, dtype=torch.float32)
        else:
            logits = unpad_mask_logits(mask_logits[i, : n * k].float(), padded, size).reshape(n, k, *size)
        score = (
            torch.ones(n, k, device=logits.device)
            if scores is None
            else scores[i, : n * k].float().sigmoid().reshape(n, k)
        )
        results.append(PromptPrediction(masks=logits > mask_threshold, scores=score, mask_logits=logits))
    return results
