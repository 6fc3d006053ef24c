"""Pairwise matching costs between Q predictions and N targets, evaluated on sampled points (fp32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_ndim

__all__ = ["pairwise_class_cost", "pairwise_dice_cost", "pairwise_sigmoid_ce_cost"]


def _check_pair(logits: Tensor, targets: Tensor) -> None:
    check_ndim("logits", logits, 2, "[Q, P]")
    check_ndim("targets", targets, 2, "[N, P]")
    if logits.shape[1] != targets.shape[1]:
        raise ValueError(
            f"targets: expected {logits.shape[1]} points per mask (logits'), got shape {tuple(targets.shape)}"
        )


def pairwise_sigmoid_ce_cost(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of every prediction against every target over the points.

    Args:
        logits: ``[Q, P]`` mask logits at P points.
        targets: ``[N, P]`` target mask values in ``[0, 1]`` at the same points.

    Returns:
        ``[Q, N]`` float32 costs.
    """
    _check_pair(logits, targets)
    logits, targets = logits.float(), targets.float()
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def pairwise_dice_cost(logits: Tensor, targets: Tensor) -> Tensor:
    """Dice loss ``1 - (2|p t| + 1) / (|p| + |t| + 1)`` of every prediction against every target.

    Args:
        logits: ``[Q, P]`` mask logits at P points.
        targets: ``[N, P]`` target mask values in ``[0, 1]``.

    Returns:
        ``[Q, N]`` float32 costs.
    """
    _check_pair(logits, targets)
    probs, targets = logits.float().sigmoid(), targets.float()
    numerator = 2 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def pairwise_class_cost(class_logits: Tensor, labels: Tensor) -> Tensor:
    """Negative softmax probability of each target's class under each prediction.

    Args:
        class_logits: ``[Q, C + 1]`` logits (last = void).
        labels: ``[N]`` int64 class ids in ``[0, C)``.

    Returns:
        ``[Q, N]`` float32 costs.
    """
    check_ndim("class_logits", class_logits, 2, "[Q, C + 1]")
    check_ndim("labels", labels, 1, "[N]")
    return -class_logits.float().softmax(-1)[:, labels]
