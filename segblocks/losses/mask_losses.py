"""Per-mask losses on sampled points: Dice, sigmoid cross-entropy, sigmoid focal (all in float32)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype, check_ndim

__all__ = ["dice_loss", "sigmoid_ce_loss", "sigmoid_focal_loss"]


_REDUCTIONS = ("sum", "none")


def _check(logits: Tensor, targets: Tensor, num_masks: float, reduction: str = "sum") -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    check_dtype("logits", logits, "floating")
    check_dtype("targets", targets, "floating")
    if logits.shape != targets.shape:
        raise ValueError(
            f"targets: expected the shape of logits {tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    if num_masks <= 0:
        raise ValueError(f"num_masks: expected a positive normaliser, got {num_masks}")


def dice_loss(logits: Tensor, targets: Tensor, num_masks: float = 1.0, *, reduction: str = "sum") -> Tensor:
    """Sum over masks of ``1 - (2|p t| + 1) / (|p| + |t| + 1)``, divided by ``num_masks``.

    Args:
        logits: ``[M, P]`` mask logits at P points.
        targets: ``[M, P]`` target values in ``[0, 1]``.
        num_masks: normaliser (number of target masks in the batch).
        reduction: ``"sum"`` (the normalised sum) or ``"none"`` (``[M]``, one loss per mask,
            not normalised).

    Returns:
        Scalar float32 loss, or ``[M]`` with ``reduction="none"``.
    """
    check_ndim("logits", logits, 2, "[M, P]")
    _check(logits, targets, num_masks, reduction)
    probs, targets = logits.float().sigmoid(), targets.float()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    per_mask = 1 - (numerator + 1) / (denominator + 1)
    return per_mask if reduction == "none" else per_mask.sum() / num_masks


def sigmoid_ce_loss(logits: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    """Binary cross-entropy averaged over points, summed over masks, divided by ``num_masks``.

    Args:
        logits: ``[M, P]`` mask logits at P points.
        targets: ``[M, P]`` target values in ``[0, 1]``.
        num_masks: normaliser.

    Returns:
        Scalar float32 loss.
    """
    check_ndim("logits", logits, 2, "[M, P]")
    _check(logits, targets, num_masks)
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return loss.mean(-1).sum() / num_masks


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    num_masks: float = 1.0,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> Tensor:
    """Focal loss (RetinaNet) on binary logits of any shape, summed and divided by ``num_masks``.

    Args:
        logits: binary logits, any shape (e.g. ``[B, Q]`` objectness).
        targets: same shape, values in ``[0, 1]``.
        num_masks: normaliser.
        alpha: weight of the positives (negative: no weighting).
        gamma: focusing exponent (0 with ``alpha < 0``: binary cross-entropy).
        reduction: ``"sum"`` (the normalised sum) or ``"none"`` (the per-element losses, not
            normalised).

    Returns:
        Scalar float32 loss, or the per-element losses with ``reduction="none"``.
    """
    _check(logits, targets, num_masks, reduction)
    logits, targets = logits.float(), targets.float()
    probs = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probs * targets + (1 - probs) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss if reduction == "none" else loss.sum() / num_masks
