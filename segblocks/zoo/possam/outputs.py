"""What PosSAM's inference produces: raw outputs of a batch, and their post-processing per image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from segblocks.heads import GeometricEnsemble, MaskAwareSelectiveEnsemble
from segblocks.inference import instance_inference, panoptic_inference, semantic_inference, unpad_mask_logits
from segblocks.zoo.mask2former.model import TASKS, Mask2FormerPrediction
from segblocks.zoo.possam.vocabulary import Vocabulary

__all__ = [
    "CLASSIFIERS",
    "PosSAMOutputs",
    "PosSAMPrediction",
    "classify_outputs",
    "clip_with_void",
    "postprocess_outputs",
]

#: Classifiers of :meth:`PosSAM.predict`: LDP alone, frozen CLIP alone, FC-CLIP's fixed geometric
#: ensemble, PosSAM's MASE.
CLASSIFIERS = ("ldp", "clip", "geometric", "mase")

#: Post-processed results of one image (the panoptic / semantic / instance result structures).
PosSAMPrediction = Mask2FormerPrediction


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


def postprocess_outputs(
    mask_logits: Tensor,
    class_logits: Tensor,
    is_thing: Sequence[bool],
    *,
    padded: tuple[int, int],
    image_sizes: Sequence[tuple[int, int]],
    tasks: Sequence[str] = TASKS,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    top_k: int = 100,
) -> list[PosSAMPrediction]:
    """Panoptic / semantic / instance results of every image at its own size.

    Args:
        mask_logits: ``[B, Q, h, w]`` mask logits of the padded batch.
        class_logits: ``[B, Q, C + 1]`` class logits (or log-probabilities).
        is_thing: ``C`` flags.
        padded: ``(H', W')`` of the padded input.
        image_sizes: per image ``(h, w)`` of the valid region.
        tasks: any of ``"panoptic"``, ``"semantic"``, ``"instance"``.
        object_mask_threshold: panoptic threshold.
        overlap_threshold: panoptic threshold.
        top_k: instance pairs kept per image.

    Returns:
        One :class:`PosSAMPrediction` per image.

    Raises:
        ValueError: on an unknown task or a number of ``image_sizes`` other than ``B``.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"tasks: expected a non-empty subset of {TASKS}, got {list(tasks)}")
    if len(image_sizes) != mask_logits.shape[0]:
        raise ValueError(f"image_sizes: expected {mask_logits.shape[0]} sizes, got {len(image_sizes)}")
    results = []
    for i, size in enumerate(image_sizes):
        masks = unpad_mask_logits(mask_logits[i].float(), padded, size)
        logits = class_logits[i].float()
        result = PosSAMPrediction()
        if "panoptic" in tasks:
            result.panoptic = panoptic_inference(
                logits,
                masks,
                is_thing=is_thing,
                object_mask_threshold=object_mask_threshold,
                overlap_threshold=overlap_threshold,
            )
        if "semantic" in tasks:
            result.semantic = semantic_inference(logits, masks)
        if "instance" in tasks:
            result.instance = instance_inference(logits, masks, top_k=top_k, is_thing=is_thing)
        results.append(result)
    return results
