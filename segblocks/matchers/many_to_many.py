"""Many-to-many matching of multi-granularity prompt outputs (Uni-OVSeg, Sec. 3.2).

A point lies in several ground-truth masks at once (a part, the thing, the region around it). Each
prompt has ``k`` outputs (Uni-OVSeg: 4), laid out prompt after prompt; its *eligible* targets are the
masks that contain its point. Per prompt, its outputs and its eligible targets are matched one to one
by Hungarian matching on the point-sampled ``mask_weight * BCE + dice_weight * Dice`` cost, so up to
``k`` granularities are supervised and a target may be matched by the outputs of many prompts.
Unmatched outputs get no loss. Optionally a pair counts only when its mask IoU reaches
``iou_threshold`` (the released configuration's positive threshold, 0.7).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from segblocks._validation import check_dtype
from segblocks.matchers.costs import pairwise_dice_cost, pairwise_sigmoid_ce_cost
from segblocks.matchers.hungarian import Matching, prompt_slots, sample_at_points
from segblocks.structures import Targets

__all__ = ["ManyToManyMatcher"]


class ManyToManyMatcher(nn.Module):
    """Match each prompt's ``k`` outputs to the targets eligible for that prompt.

    Args:
        outputs_per_prompt: ``k``, consecutive outputs per prompt.
        mask_weight: weight of the BCE cost.
        dice_weight: weight of the Dice cost.
        num_points: points per image for the costs (Uni-OVSeg: 6,000).
        iou_threshold: keep only pairs whose binary masks (logit > 0) reach this IoU; None keeps all.
    """

    def __init__(
        self,
        *,
        outputs_per_prompt: int = 4,
        mask_weight: float = 2.0,
        dice_weight: float = 1.0,
        num_points: int = 6000,
        iou_threshold: float | None = None,
    ) -> None:
        super().__init__()
        if outputs_per_prompt < 1:
            raise ValueError(f"outputs_per_prompt: expected an int >= 1, got {outputs_per_prompt}")
        if min(mask_weight, dice_weight) < 0:
            raise ValueError(
                f"mask_weight, dice_weight: expected non-negative, got {mask_weight}, {dice_weight}"
            )
        if num_points <= 0:
            raise ValueError(f"num_points: expected a positive int, got {num_points}")
        if iou_threshold is not None and not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold: expected a value in [0, 1] or None, got {iou_threshold}")
        self.outputs_per_prompt = outputs_per_prompt
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.num_points = num_points
        self.iou_threshold = iou_threshold

    @torch.no_grad()
    def forward(
        self,
        mask_logits: Tensor,
        class_logits: Tensor | None,
        targets: Sequence[Targets],
        generator: torch.Generator | None = None,
        *,
        eligible: Sequence[Tensor],
    ) -> Matching:
        """Match every prompt's outputs to its eligible targets.

        Args:
            mask_logits: ``[B, P * k, H, W]`` (or tubes ``[B, P * k, T, H, W]``).
            class_logits: ignored (the prompt branch is class-agnostic).
            targets: B :class:`~segblocks.structures.Targets` with ``N_b`` candidate masks each.
            generator: random generator for the points.
            eligible: B bool tensors ``[P, N_b]``: True where target ``n`` may answer prompt ``p``
                (e.g. its mask contains the prompt's point).

        Returns:
            B pairs ``(pred_idx [M], target_idx [M])`` int64 on the CPU, sorted by prediction index.

        Raises:
            ValueError: on a query count that is not a multiple of ``k`` or mismatched ``eligible``.
        """
        prompts = prompt_slots(mask_logits, targets, self.outputs_per_prompt)
        if len(eligible) != len(targets):
            raise ValueError(
                f"eligible: expected {len(targets)} entries (one per image), got {len(eligible)}"
            )
        matching: Matching = []
        for i, (t, allowed) in enumerate(zip(targets, eligible)):
            check_dtype(f"eligible[{i}]", allowed, "bool")
            if allowed.ndim != 2 or allowed.shape[1] != len(t) or allowed.shape[0] > prompts:
                raise ValueError(
                    f"eligible[{i}]: expected [P <= {prompts}, N={len(t)}], got shape {tuple(allowed.shape)}"
                )
            matching.append(self._match_image(mask_logits[i], t, allowed.cpu(), generator))
        return matching

    def _match_image(
        self, logits: Tensor, targets: Targets, allowed: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        k, n_prompts = self.outputs_per_prompt, allowed.shape[0]
        rows: list[int] = []
        cols: list[int] = []
        if len(targets) and bool(allowed.any()):
            device = logits.device
            points = torch.rand(1, self.num_points, 2, device=device, generator=generator)
            with torch.autocast(device_type=device.type, enabled=False):
                pred = sample_at_points(logits[: n_prompts * k], points)  # [P*k, S]
                tgt = sample_at_points(targets.masks.to(device), points)  # [N, S]
                ce = pairwise_sigmoid_ce_cost(pred, tgt)
                cost = (
                    (self.mask_weight * ce + self.dice_weight * pairwise_dice_cost(pred, tgt)).cpu().numpy()
                )
                iou = _binary_iou(logits[: n_prompts * k] > 0, targets.masks.to(device)).cpu().numpy()
            if not np.isfinite(cost).all():
                raise ValueError("mask_logits: non-finite matching costs (NaN or inf in the predictions)")
            for p in range(n_prompts):
                cand = np.flatnonzero(allowed[p].numpy())
                if cand.size == 0:
                    continue
                r, c = linear_sum_assignment(cost[p * k : (p + 1) * k][:, cand])
                for out, j in zip(r, cand[c]):
                    if self.iou_threshold is None or iou[p * k + out, j] >= self.iou_threshold:
                        rows.append(p * k + int(out))
                        cols.append(int(j))
        return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def _binary_iou(pred: Tensor, target: Tensor) -> Tensor:
    """``[Q, N]`` IoU of binary masks (tubes: over all frames); the prediction is resized to the target."""
    if pred.shape[-2:] != target.shape[-2:]:
        frames = pred.reshape(-1, 1, *pred.shape[-2:]).float()
        frames = nn.functional.interpolate(frames, size=target.shape[-2:], mode="nearest")
        pred = frames.reshape(*pred.shape[:-2], *target.shape[-2:]) > 0.5
    p = pred.flatten(1).float()
    t = target.flatten(1).float()
    inter = p @ t.T
    union = p.sum(1)[:, None] + t.sum(1)[None, :] - inter
    return inter / union.clamp_min(1.0)
