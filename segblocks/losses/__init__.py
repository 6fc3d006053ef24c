"""Losses: the set criterion with deep supervision and the per-mask losses it uses."""

from segblocks.losses.mask_losses import dice_loss, sigmoid_ce_loss, sigmoid_focal_loss
from segblocks.losses.set_criterion import SetCriterion

__all__ = ["SetCriterion", "dice_loss", "sigmoid_ce_loss", "sigmoid_focal_loss"]
