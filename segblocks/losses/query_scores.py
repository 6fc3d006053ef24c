"""Losses on a set prediction's per-query scores (``iou_scores``), given the matching.

* :func:`objectness_loss` (OMG-Seg): sigmoid focal loss, matched queries positive, the rest negative.
* :func:`matched_iou_loss` (PosSAM, SAM): ``sigmoid(iou_scores)`` of the matched queries regresses
  (MSE) the true IoU of the predicted binary mask (``logit > 0``) with its matched target mask;
  optionally, every unmatched query's towards 0 (our option; the paper supervises matched queries
  only).

Both take the matcher's index pairs and the criterion's normaliser (the number of target masks), as
:class:`~segblocks.losses.SetCriterion` calls them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks.losses.mask_losses import sigmoid_focal_loss
from segblocks.matchers.hungarian import Matching
from segblocks.structures import Targets

__all__ = ["matched_iou_loss", "objectness_loss"]


def objectness_loss(iou_scores: Tensor, matching: Matching, num_masks: float) -> Tensor:
    """Sigmoid focal loss: matched queries are positives, the others negatives.

    Args:
        iou_scores: ``[B, Q]`` objectness logits.
        matching: the matcher's index pairs per image.
        num_masks: normaliser.

    Returns:
        Unweighted scalar float32 loss.
    """
    device = iou_scores.device
    target = torch.zeros_like(iou_scores, dtype=torch.float32)
    for i, (src, _) in enumerate(matching):
        if src.numel():
            target[i, src.to(device)] = 1.0
    return sigmoid_focal_loss(iou_scores, target, num_masks)


def matched_iou_loss(
    iou_scores: Tensor,
    mask_logits: Tensor,
    targets: Sequence[Targets],
    matching: Matching,
    num_masks: float,
    *,
    unmatched_weight: float = 0.0,
) -> Tensor:
    """MSE between ``sigmoid(iou_scores)`` of matched queries and their masks' true IoU.

    The true IoU compares the predicted binary mask (``logit > 0``) with the matched target mask
    resized to the prediction's resolution (area interpolation, ``>= 0.5``); it is a constant (no
    gradient flows into the masks). Unmatched queries are not supervised unless ``unmatched_weight``
    is set: then their squared ``sigmoid(iou_scores)`` (the error against 0) is added, that weighted.

    Args:
        iou_scores: ``[B, Q]`` IoU logits.
        mask_logits: ``[B, Q, H, W]`` mask logits (tubes ``[B, Q, T, H, W]``: IoU over the tube).
        targets: the batch's targets.
        matching: the matcher's index pairs per image.
        num_masks: normaliser.
        unmatched_weight: weight of an unmatched query's error, relative to a matched one's.

    Returns:
        Unweighted scalar float32 loss (zero, still connected to the graph, when no query is
        supervised).
    """
    device = iou_scores.device
    h, w = mask_logits.shape[-2:]
    preds, truths = [], []
    unmatched = torch.ones_like(iou_scores, dtype=torch.bool)
    for i, (src, tgt) in enumerate(matching):
        if not src.numel():
            continue
        src = src.to(device)
        unmatched[i, src] = False
        with torch.no_grad():
            masks = targets[i].masks[tgt.to(targets[i].masks.device)].to(device, torch.float32)
            frames = masks.reshape(1, -1, *masks.shape[-2:])  # [1, M (* T), H, W]
            masks = (F.interpolate(frames, size=(h, w), mode="area") >= 0.5).reshape(*masks.shape[:-2], h, w)
            pred = mask_logits[i, src].detach() > 0
            inter = (pred & masks).flatten(1).sum(-1).float()
            union = (pred | masks).flatten(1).sum(-1).float()
            truths.append(inter / union.clamp_min(1.0))
        preds.append(iou_scores[i, src].float().sigmoid())
    loss = iou_scores.float().sum() * 0.0  # zero, still connected to the graph
    if preds:
        loss = loss + F.mse_loss(torch.cat(preds), torch.cat(truths), reduction="sum")
    if unmatched_weight:
        loss = loss + unmatched_weight * iou_scores[unmatched].float().sigmoid().square().sum()
    return loss / num_masks
