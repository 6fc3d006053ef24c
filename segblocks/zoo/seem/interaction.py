"""Simulated interaction rounds: the next click of every prompt from its current answer.

SEEM trains and is evaluated with the same rule (REFERENCE 2.4): the next click goes to the centre
of the larger error region of a prompt's answer -- positive inside the false negatives, negative
inside the false positives -- never on a pixel clicked before; an object already at IoU >= 0.925
gets no click (training). The rule itself is :func:`segblocks.metrics.clicks.next_click`, the one
the NoC metric uses; the previous answer becomes the prompt's memory mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks.decoders import click_region
from segblocks.metrics.clicks import Click, next_click
from segblocks.structures import Targets
from segblocks.zoo.seem.prompt_batch import PromptBatch

__all__ = ["add_click", "answer_masks", "as_targets", "simulate_next_round"]


def add_click(positive: Tensor, negative: Tensor, clicks: Tensor, click: Click, radius: int = 1) -> Tensor:
    """Draw one click into one prompt's regions, in place, and return its region.

    A positive click joins ``positive`` and leaves ``negative``; a negative one joins ``negative``
    where it is not positive. Either way it is marked in ``clicks``.

    Args:
        positive: ``[H, W]`` bool positive region of the prompt (changed in place).
        negative: ``[H, W]`` bool negative region (changed in place).
        clicks: ``[H, W]`` bool pixels marked as clicks (changed in place).
        click: the click.
        radius: half side of the click's square.

    Returns:
        ``[H, W]`` bool, the click's region.
    """
    size = (int(positive.shape[-2]), int(positive.shape[-1]))
    region = click_region(click.x, click.y, size, radius=radius).to(positive.device)
    clicks |= region
    if click.positive:
        positive |= region
        negative &= ~region
    else:
        negative |= region & ~positive
    return region


def answer_masks(answers: Tensor, size: tuple[int, int], padded: tuple[int, int] | None = None) -> Tensor:
    """Mask logits of the prompts' answers -> binary masks at the image size.

    Args:
        answers: ``[B, P, h, w]`` logits (stride 4 of the padded input).
        size: ``(H, W)`` of the images.
        padded: ``(H', W')`` of the padded input (default: ``size``).

    Returns:
        ``[B, P, H, W]`` bool (logit > 0).
    """
    padded = padded or size
    up = F.interpolate(answers.float(), size=padded, mode="bilinear", align_corners=False)
    return up[..., : size[0], : size[1]] > 0


def simulate_next_round(
    prompts: PromptBatch,
    answers: Tensor,
    targets: Sequence[Targets],
    *,
    clickable: Tensor | None = None,
    skip_iou: float = 0.925,
    click_radius: int = 1,
) -> PromptBatch:
    """Add one simulated click to every clickable prompt; the answers become the memory masks.

    The new clicks are also marked in the batch's ``clicks`` (the visual sampler can sample them as
    regions of their own).

    Args:
        prompts: this round's prompts (regions at the image size ``(H, W)``).
        answers: ``[B, P, H, W]`` bool answers of this round.
        targets: per image, target ``p`` the mask prompt ``p`` asks for.
        clickable: ``[B, P]`` bool, prompts that take clicks (default: every valid prompt).
        skip_iou: no click for an answer at least this good.
        click_radius: half side of a click's square.

    Returns:
        The next round's :class:`PromptBatch`.
    """
    positive, negative = prompts.positive.clone(), prompts.negative.clone()
    clicks = torch.zeros_like(positive) if prompts.clicks is None else prompts.clicks.clone()
    clickable = prompts.valid if clickable is None else clickable & prompts.valid
    answers_np = answers.cpu().numpy()
    for b, target in enumerate(targets):
        gts = target.masks.cpu().numpy()
        for p in range(len(target)):
            if not bool(clickable[b, p]):
                continue
            gt, pred = gts[p], answers_np[b, p]
            union = np.count_nonzero(gt | pred)
            if union and np.count_nonzero(gt & pred) / union >= skip_iou:
                continue
            clicked = (positive[b, p] | negative[b, p]).cpu().numpy()
            click = next_click(gt, pred, clicked)
            if click is None:
                continue
            add_click(positive[b, p], negative[b, p], clicks[b, p], click, radius=click_radius)
    return PromptBatch(
        positive=positive,
        negative=negative,
        previous=answers.to(prompts.previous.device) & prompts.valid[:, :, None, None],
        texts=prompts.texts,
        valid=prompts.valid,
        clicks=clicks,
    )


def as_targets(masks: Sequence[np.ndarray | Tensor]) -> Targets:
    """Prompt targets of one image: ``[N, H, W]`` masks, labels 0."""
    stacked = torch.as_tensor(np.stack([np.asarray(m) for m in masks])) if len(masks) else None
    if stacked is None:
        raise ValueError("masks: expected at least one target mask")
    return Targets(masks=stacked.bool(), labels=torch.zeros(len(masks), dtype=torch.int64))
