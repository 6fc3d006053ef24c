"""SAM's training loss: focal 20 : dice 1 on the masks, the minimum over the outputs, IoU-prediction MSE.

The per-pixel term is :func:`segblocks.losses.sigmoid_focal_loss` (the mean over pixels); with
``focal_gamma=0`` and no alpha it is plain binary cross-entropy (what the shapes-sam recipe uses, at
weight 1). The mask term is :func:`segblocks.losses.dice_loss`.

For an ambiguous prompt (multi-mask output) only the output with the lowest mask loss is trained
against the target (the "min over the 3 masks" of the SAM paper); the IoU head regresses the actual
IoU of every output with the target. Everything is computed in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks.losses.mask_losses import dice_loss, sigmoid_focal_loss

__all__ = ["SamLossWeights", "mask_iou_per_output", "prompt_losses"]


@dataclass(frozen=True)
class SamLossWeights:
    """Weights of SAM's loss terms (the paper: focal 20, dice 1, IoU MSE 1).

    Attributes:
        focal: weight of the per-pixel mean sigmoid focal loss (cross-entropy when
            ``focal_gamma=0`` and ``focal_alpha < 0``).
        dice: weight of the dice loss.
        iou: weight of the IoU-prediction mean squared error.
        focal_alpha: focal-loss weight of the positives, ``1 - alpha`` for the negatives; negative
            for none (the default: the paper does not give one, and RetinaNet's 0.25 slows the
            start from scratch).
        focal_gamma: focal-loss focusing exponent.
    """

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    focal_alpha: float = -1.0
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        for name in ("focal", "dice", "iou", "focal_gamma"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected a non-negative weight, got {getattr(self, name)!r}")


def _check(logits: Tensor, targets: Tensor) -> None:
    if logits.ndim != 4:
        raise ValueError(f"logits: expected [K, M, H, W], got {tuple(logits.shape)}")
    if targets.ndim != 3 or targets.shape[0] != logits.shape[0] or targets.shape[1:] != logits.shape[2:]:
        raise ValueError(
            f"targets: expected [K, H, W] = {[logits.shape[0], *logits.shape[2:]]} for logits "
            f"{tuple(logits.shape)}, got {tuple(targets.shape)}"
        )


def mask_iou_per_output(logits: Tensor, targets: Tensor) -> Tensor:
    """IoU of each thresholded output (logit > 0) with its prompt's target.

    Args:
        logits: ``[K, M, H, W]`` mask logits.
        targets: ``[K, H, W]`` bool, or float in ``[0, 1]`` (area fractions; > 0.5 counts as in).

    Returns:
        ``[K, M]`` IoU in ``[0, 1]`` (1 when both masks are empty).

    Raises:
        ValueError: on mismatched shapes.
    """
    _check(logits, targets)
    pred = logits > 0
    gt = (targets if targets.dtype == torch.bool else targets > 0.5)[:, None]
    inter = (pred & gt).flatten(2).sum(-1).float()
    union = (pred | gt).flatten(2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def prompt_losses(
    logits: Tensor, iou_pred: Tensor, targets: Tensor, weights: SamLossWeights
) -> dict[str, Tensor]:
    """SAM's loss for ``K`` prompts with ``M`` outputs each, summed over the prompts.

    Args:
        logits: ``[K, M, H, W]`` mask logits (``M`` = 3 for ambiguous prompts, 1 otherwise).
        iou_pred: ``[K, M]`` predicted IoU.
        targets: ``[K, H, W]`` target of each prompt: bool, or float in ``[0, 1]`` (e.g. the area
            fraction of each low-resolution pixel).
        weights: the loss weights.

    Returns:
        ``focal``, ``dice`` (of the best output per prompt, weighted) and ``iou`` (all outputs,
        weighted): scalar float32 sums over the ``K`` prompts (divide by the number of prompts).

    Raises:
        ValueError: on mismatched shapes.
    """
    _check(logits, targets)
    if iou_pred.shape != logits.shape[:2]:
        raise ValueError(f"iou_pred: expected {tuple(logits.shape[:2])}, got {tuple(iou_pred.shape)}")
    k, m = logits.shape[:2]
    x = logits.float().reshape(k * m, -1)  # [K * M, P]
    t = targets.float().flatten(1)[:, None].expand(k, m, -1).reshape(k * m, -1)
    focal = sigmoid_focal_loss(
        x, t, alpha=weights.focal_alpha, gamma=weights.focal_gamma, reduction="none"
    ).mean(-1)
    focal, dice = focal.view(k, m), dice_loss(x, t, reduction="none").view(k, m)
    per_output = weights.focal * focal + weights.dice * dice
    best = per_output.detach().argmin(dim=1, keepdim=True)  # [K, 1]
    iou_true = mask_iou_per_output(logits.detach(), targets)
    return {
        "focal": weights.focal * focal.gather(1, best).sum(),
        "dice": weights.dice * dice.gather(1, best).sum(),
        "iou": weights.iou * F.mse_loss(iou_pred.float(), iou_true, reduction="none").mean(-1).sum(),
    }
