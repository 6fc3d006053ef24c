"""IoU regression for every output of a multi-granularity prompt (Uni-OVSeg, our choice).

Many-to-many matching supervises the masks of matched outputs only; an IoU head trained on those
alone never learns to give a low score to an output no target was matched to, yet point-grid
inference keeps every output whose predicted IoU passes a threshold. Here every output of a prompt
regresses (MSE on ``sigmoid``) the best IoU its binary mask reaches with any of the prompt's
eligible targets (the masks that contain its point), as SAM's IoU head scores every output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_ndim
from segblocks.losses.query_scores import binary_mask_ious
from segblocks.structures import Targets

__all__ = ["eligible_iou_loss"]


def eligible_iou_loss(
    iou_scores: Tensor,
    mask_logits: Tensor,
    targets: Sequence[Targets],
    eligible: Sequence[Tensor],
    *,
    outputs_per_prompt: int,
) -> Tensor:
    """MSE between ``sigmoid(iou_scores)`` and each output's best IoU with its prompt's eligible targets.

    Args:
        iou_scores: ``[B, P * k]`` IoU logits.
        mask_logits: ``[B, P * k, h, w]`` mask logits (targets are area-resized to ``h, w``, ``>= 0.5``).
        targets: B :class:`~segblocks.structures.Targets` with ``N_b`` masks.
        eligible: B bool ``[P_b, N_b]`` (``P_b <= P``): target ``n`` may answer prompt ``p``.
        outputs_per_prompt: ``k``.

    Returns:
        Scalar float32 loss, the mean over the outputs of prompts with at least one eligible target
        (zero, still connected to the graph, when there is none). The true IoU is a constant.

    Raises:
        ValueError: on mismatched shapes.
    """
    check_ndim("mask_logits", mask_logits, 4, "[B, P * k, h, w]")
    b, q = mask_logits.shape[:2]
    k = outputs_per_prompt
    if k < 1 or q % k or tuple(iou_scores.shape) != (b, q):
        raise ValueError(
            f"iou_scores, mask_logits: expected [B, P * k] and [B, P * k, h, w] with k={k}, "
            f"got {tuple(iou_scores.shape)} and {tuple(mask_logits.shape)}"
        )
    if len(targets) != b or len(eligible) != b:
        raise ValueError(
            f"targets, eligible: expected {b} entries each, got {len(targets)} and {len(eligible)}"
        )
    preds, truths = [], []
    for i, (t, allowed) in enumerate(zip(targets, eligible)):
        p = allowed.shape[0]
        if allowed.ndim != 2 or allowed.shape[1] != len(t) or p * k > q:
            raise ValueError(
                f"eligible[{i}]: expected [P <= {q // k}, N={len(t)}], got {tuple(allowed.shape)}"
            )
        rows = allowed.any(1)
        if not bool(rows.any()):
            continue
        iou = binary_mask_ious(mask_logits[i, : p * k], t.masks)  # [P*k, N], no gradient
        ok = allowed.to(iou.device).repeat_interleave(k, dim=0)
        best = torch.where(ok, iou, torch.zeros_like(iou)).max(1).values  # [P*k]
        keep = rows.to(iou.device).repeat_interleave(k)
        preds.append(iou_scores[i, : p * k][keep].float().sigmoid())
        truths.append(best[keep])
    if not preds:
        return iou_scores.float().sum() * 0.0
    return F.mse_loss(torch.cat(preds), torch.cat(truths))
