"""Matching by construction: prompt queries are matched to the target they were built from.

A prompt-taking model (OMG-Seg's location queries, SEEM's spatial queries, SAM-style decoders) makes
``k`` output queries per prompt, laid out prompt after prompt: queries ``[p * k, (p + 1) * k)`` belong to
prompt ``p``, and the image's target ``p`` is the mask that prompt asked for. With one output a prompt
(``k = 1``) query ``p`` is matched to target ``p``; with several, the output of least point-sampled
``BCE + Dice`` cost is (SAM's "train the best of the 3 masks" rule), the others are left unmatched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segblocks.matchers.costs import pairwise_dice_cost, pairwise_sigmoid_ce_cost
from segblocks.matchers.hungarian import Matching, prompt_slots, sample_at_points
from segblocks.structures import Targets

__all__ = ["ByConstructionMatcher"]


class ByConstructionMatcher(nn.Module):
    """Match the ``k`` outputs of prompt ``p`` to target ``p`` (the best of them when ``k > 1``).

    Args:
        outputs_per_prompt: ``k``, consecutive output queries per prompt.
        num_points: points per image for the best-of-``k`` cost (unused when ``k = 1``).
    """

    def __init__(self, *, outputs_per_prompt: int = 1, num_points: int = 12544) -> None:
        super().__init__()
        if outputs_per_prompt < 1:
            raise ValueError(f"outputs_per_prompt: expected an int >= 1, got {outputs_per_prompt}")
        if num_points <= 0:
            raise ValueError(f"num_points: expected a positive int, got {num_points}")
        self.outputs_per_prompt = outputs_per_prompt
        self.num_points = num_points

    @torch.no_grad()
    def forward(
        self,
        mask_logits: Tensor,
        class_logits: Tensor | None,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
    ) -> Matching:
        """Pair each prompt's output(s) with its target.

        Args:
            mask_logits: ``[B, P * k, H, W]`` (or tubes ``[B, P * k, T, H, W]``); padding prompts
                beyond an image's target count are left unmatched.
            class_logits: ignored (prompts carry no class to match on).
            targets: B :class:`~segblocks.structures.Targets`, target ``p`` the mask of prompt ``p``.
            generator: random generator for the points (``k > 1``).

        Returns:
            B pairs ``(pred_idx [N], target_idx [N])`` int64 on the CPU.

        Raises:
            ValueError: on a query count that is not a multiple of ``k``, more targets than prompts,
                or a wrong number of targets.
        """
        k = self.outputs_per_prompt
        slots = prompt_slots(mask_logits, targets, k)
        matching: Matching = []
        for i, t in enumerate(targets):
            n = len(t)
            if n > slots:
                raise ValueError(
                    f"targets[{i}]: {n} targets for {slots} prompts; expected one target a prompt"
                )
            prompts = torch.arange(n, dtype=torch.int64)
            if k == 1 or n == 0:
                matching.append((prompts * k, prompts))
                continue
            points = torch.rand(1, self.num_points, 2, device=mask_logits.device, generator=generator)
            with torch.autocast(device_type=mask_logits.device.type, enabled=False):
                pred = sample_at_points(mask_logits[i, : n * k], points)  # [n * k, P]
                tgt = sample_at_points(t.masks.to(mask_logits.device), points)  # [n, P]
                cost = pairwise_sigmoid_ce_cost(pred, tgt) + pairwise_dice_cost(pred, tgt)  # [n * k, n]
                own = cost[torch.arange(n * k), prompts.repeat_interleave(k)].reshape(n, k)  # vs own target
            matching.append((prompts * k + own.argmin(dim=1).cpu(), prompts))
        return matching
