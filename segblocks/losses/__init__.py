"""Losses: the set criterion with deep supervision, the per-mask losses it uses, region-text alignment."""

from segblocks.losses.alignment import ALIGNMENT_LOSSES, region_text_alignment_loss
from segblocks.losses.grouped_criterion import ExtraLoss, GroupedCriterion
from segblocks.losses.mask_losses import dice_loss, sigmoid_ce_loss, sigmoid_focal_loss
from segblocks.losses.prompt_iou import eligible_iou_loss
from segblocks.losses.query_scores import binary_mask_ious, matched_iou_loss, objectness_loss
from segblocks.losses.selection import CandidateSelectionLoss
from segblocks.losses.set_criterion import SetCriterion

__all__ = [
    "ALIGNMENT_LOSSES",
    "CandidateSelectionLoss",
    "ExtraLoss",
    "GroupedCriterion",
    "SetCriterion",
    "binary_mask_ious",
    "dice_loss",
    "eligible_iou_loss",
    "matched_iou_loss",
    "objectness_loss",
    "region_text_alignment_loss",
    "sigmoid_ce_loss",
    "sigmoid_focal_loss",
]
