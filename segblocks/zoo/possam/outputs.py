"""What PosSAM's inference produces: raw outputs of a batch and the choice of classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from segblocks.heads import GeometricEnsemble, MaskAwareSelectiveEnsemble
from segblocks.inference import SegmentationPrediction
from segblocks.zoo.possam.config import CLASSIFIER_NAMES
from segblocks.zoo.possam.vocabulary import Vocabulary

__all__ = [
    "CLASSIFIERS",
    "PosSAMOutputs",
    "PosSAMPrediction",
    "classify_outputs",
    "clip_with_void",
]

#: Classifiers of :meth:`PosSAM.predict`: LDP alone, frozen CLIP alone, FC-CLIP's fixed geometric
#: ensemble, PosSAM's MASE.
CLASSIFIERS = CLASSIFIER_NAMES

#: Post-processed results of one image (the panoptic / semantic / instance result structures).
PosSAMPrediction = SegmentationPrediction


@dataclass
class PosSAMOutputs:
    """Inference outputs of a batch before post-processing (final decoder layer).

    Attributes:
        mask_logits: ``[B, Q, H/4, W/4]`` mask logits of the padded input.
        ldp_logits: ``[B, Q, C + 1]`` LDP logits, the last column void.
        clip_logits: ``[B, Q, C]`` frozen-CLIP mask-pooled logits (no void).
        iou_logits: ``[B, Q]`` predicted-IoU logits.
        valid: ``[B, Q]`` bool, True for masks with at least one pixel (logit > 0).
        vocabulary: the vocabulary the logits refer to.
    """

    mask_logits: Tensor
    ldp_logits: Tensor
    clip_logits: Tensor
    iou_logits: Tensor
    valid: Tensor
    vocabulary: Vocabulary


def clip_with_void(ldp_logits: Tensor, clip_logits: Tensor) -> Tensor:
    """Frozen CLIP alone: CLIP's class distribution, with LDP's void probability (CLIP has no void).

    Args:
        ldp_logits: ``[B, Q, C + 1]`` LDP logits.
        clip_logits: ``[B, Q, C]`` frozen-CLIP logits.

    Returns:
        ``[B, Q, C + 1]`` float32 log-probabilities, the last column void.
    """
    void = ldp_logits.float().softmax(-1)[..., -1:]
    probs = torch.cat([clip_logits.float().softmax(-1) * (1.0 - void), void], dim=-1)
    return probs.clamp_min(1e-8).log()


def classify_outputs(
    outputs: PosSAMOutputs,
    classifier: str,
    *,
    geometric: GeometricEnsemble,
    mase: MaskAwareSelectiveEnsemble,
) -> Tensor:
    """Class scores of ``outputs`` by one of :data:`CLASSIFIERS` (see :meth:`PosSAM.classify`).

    Args:
        outputs: a batch's raw outputs.
        classifier: ``"ldp"``, ``"clip"``, ``"geometric"`` or ``"mase"``.
        geometric: the fixed ensemble block.
        mase: the MASE block.

    Returns:
        ``[B, Q, C + 1]`` logits or log-probabilities, the last column void.

    Raises:
        ValueError: on an unknown classifier.
    """
    seen = outputs.vocabulary.seen.to(outputs.ldp_logits.device)
    if classifier == "ldp":
        return outputs.ldp_logits
    if classifier == "clip":
        return clip_with_void(outputs.ldp_logits, outputs.clip_logits)
    if classifier == "geometric":
        return geometric(outputs.ldp_logits, outputs.clip_logits, seen, outputs.valid)
    if classifier == "mase":
        return mase(outputs.ldp_logits, outputs.clip_logits, seen, outputs.iou_logits, outputs.valid)
    raise ValueError(f"classifier: expected one of {CLASSIFIERS}, got {classifier!r}")
