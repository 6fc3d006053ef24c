"""Losses on a set prediction's per-query scores (``iou_scores``), given the matching.

* :func:`objectness_loss` (OMG-Seg): sigmoid focal loss, matched queries positive, the rest negative.
* :func:`matched_iou_loss` (PosSAM, SAM): ``sigmoid(iou_scores)`` of the matched queries regresses
  (MSE) the true IoU of the predicted binary mask (``logit > 0``) with its matched target mask;
  optionally every unmatched query's too (our option; the paper supervises matched queries only),
  towards 0 or towards its mask's best IoU with any target segment, as SAM scores every output.
* :func:`binary_mask_ious`: those true IoUs, every predicted mask against every target mask.

Both take the matcher's index pairs and the criterion's normaliser (the number of target masks), as
:class:`~segblocks.losses.SetCriterion` calls them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from segblocks._validation import check_dtype
from segblocks.losses.mask_losses import sigmoid_focal_loss
from segblocks.matchers.hungarian import Matching
from segblocks.structures import Targets

__all__ = ["UNMATCHED_IOU_TARGETS", "binary_mask_ious", "matched_iou_loss", "objectness_loss"]

#: What an unmatched query's predicted IoU regresses (``matched_iou_loss(unmatched_target=...)``).
UNMATCHED_IOU_TARGETS = ("zero", "best_segment")


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


def binary_mask_ious(mask_logits: Tensor, masks: Tensor) -> Tensor:
    """IoU of every binary predicted mask (``logit > 0``) with every target mask, without gradient.

    The targets are resized to the prediction's resolution (area interpolation, ``>= 0.5``).

    Args:
        mask_logits: ``[Q, *lead, h, w]`` one image's mask logits (``lead`` e.g. the frames of a tube).
        masks: ``[N, *lead, H, W]`` its target masks (bool or float).

    Returns:
        ``[Q, N]`` float32 IoUs (0 where both masks are empty).

    Raises:
        ValueError: when the two do not have the same rank and leading dimensions.
        TypeError: on non-floating ``mask_logits``.
    """
    check_dtype("mask_logits", mask_logits, "floating")
    if mask_logits.ndim < 3 or masks.ndim != mask_logits.ndim or masks.shape[1:-2] != mask_logits.shape[1:-2]:
        raise ValueError(
            f"mask_logits, masks: expected [Q, *lead, h, w] and [N, *lead, H, W], got "
            f"{tuple(mask_logits.shape)} and {tuple(masks.shape)}"
        )
    h, w = mask_logits.shape[-2:]
    if not masks.shape[0]:
        return mask_logits.new_zeros(mask_logits.shape[0], 0, dtype=torch.float32)
    with torch.no_grad():
        frames = masks.to(mask_logits.device, torch.float32).reshape(1, -1, *masks.shape[-2:])
        truth = (F.interpolate(frames, size=(h, w), mode="area") >= 0.5).reshape(masks.shape[0], -1).float()
        pred = (mask_logits.detach() > 0).reshape(mask_logits.shape[0], -1).float()
        inter = pred @ truth.T
        union = pred.sum(1, keepdim=True) + truth.sum(1)[None] - inter
        return inter / union.clamp_min(1.0)


def matched_iou_loss(
    iou_scores: Tensor,
    mask_logits: Tensor,
    targets: Sequence[Targets],
    matching: Matching,
    num_masks: float,
    *,
    unmatched_weight: float = 0.0,
    unmatched_target: str = "zero",
) -> Tensor:
    """MSE between ``sigmoid(iou_scores)`` of matched queries and their masks' true IoU.

    The true IoU compares the predicted binary mask (``logit > 0``) with the matched target mask
    (:func:`binary_mask_ious`); it is a constant (no gradient flows into the masks). Unmatched
    queries are not supervised unless ``unmatched_weight`` is set: then each one's squared error is
    added, that weighted, against 0 (``unmatched_target="zero"``) or against the best IoU its mask
    reaches with any target of its image (``"best_segment"``, SAM's way of scoring every output: a
    duplicate of a segment keeps a high target, an empty or stray mask a low one).

    Args:
        iou_scores: ``[B, Q]`` IoU logits.
        mask_logits: ``[B, Q, H, W]`` mask logits (tubes ``[B, Q, T, H, W]``: IoU over the tube).
        targets: the batch's targets.
        matching: the matcher's index pairs per image.
        num_masks: normaliser.
        unmatched_weight: weight of an unmatched query's error, relative to a matched one's.
        unmatched_target: ``"zero"`` or ``"best_segment"`` (see above).

    Returns:
        Unweighted scalar float32 loss (zero, still connected to the graph, when no query is
        supervised).

    Raises:
        ValueError: on an unknown ``unmatched_target``.
    """
    if unmatched_target not in UNMATCHED_IOU_TARGETS:
        raise ValueError(
            f"unmatched_target: expected one of {UNMATCHED_IOU_TARGETS}, got {unmatched_target!r}"
        )
    device = iou_scores.device
    matched: list[tuple[Tensor, Tensor]] = []  # (predicted, true) IoUs
    unmatched: list[tuple[Tensor, Tensor]] = []
    for i, (src, tgt) in enumerate(matching):
        src = src.to(device)
        if not src.numel() and not unmatched_weight:
            continue
        if not unmatched_weight:  # the matched masks alone: [M, N], row k = query src[k]
            ious = binary_mask_ious(mask_logits[i, src], targets[i].masks)
            rows = torch.arange(src.numel(), device=device)
        else:  # every query's: [Q, N]
            ious, rows = binary_mask_ious(mask_logits[i], targets[i].masks), src
        if src.numel():
            matched.append((iou_scores[i, src].float().sigmoid(), ious[rows, tgt.to(device)]))
        if unmatched_weight:
            rest = torch.ones(iou_scores.shape[1], dtype=torch.bool, device=device)
            rest[src] = False
            best = ious[rest].max(1).values if ious.shape[1] else ious.new_zeros(int(rest.sum()))
            target = best if unmatched_target == "best_segment" else torch.zeros_like(best)
            unmatched.append((iou_scores[i, rest].float().sigmoid(), target))
    loss = iou_scores.float().sum() * 0.0  # zero, still connected to the graph
    for pairs, weight in ((matched, 1.0), (unmatched, unmatched_weight)):
        if pairs:
            pred, true = (torch.cat(x) for x in zip(*pairs))
            loss = loss + weight * F.mse_loss(pred, true, reduction="sum")
    return loss / num_masks
