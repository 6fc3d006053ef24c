"""The tasks, classifiers and video result type of :class:`~segblocks.zoo.omg_seg.OMGSegPredictor`."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from segblocks.inference import ClipPrediction, PromptPrediction, SegmentationPrediction

__all__ = ["CLASSIFIERS", "IMAGE_TASKS", "TASKS", "VIDEO_TASKS", "LinkedClip", "Result", "check_classifier"]

#: Image tasks and the post-processing each runs.
IMAGE_TASKS = {"panoptic": "panoptic", "instance": "instance", "semantic": "semantic"}
#: Video tasks and the post-processing each runs on the linked tubes.
VIDEO_TASKS = {"vps": "panoptic", "vis": "instance", "vss": "semantic"}
#: Every task :meth:`OMGSegPredictor.predict` runs.
TASKS = (*IMAGE_TASKS, *VIDEO_TASKS, "vos", "interactive")
#: ``"omg"``: the trained classifier alone; ``"ensemble"``: with the frozen CLIP (the official inference).
CLASSIFIERS = ("omg", "ensemble")

Result = list[SegmentationPrediction] | ClipPrediction | list[PromptPrediction] | Tensor


@dataclass
class LinkedClip:
    """A clip's linked query predictions.

    Attributes:
        mask_logits: ``[Q, T, h, w]`` tube logits at the mask resolution of the padded frames.
        class_logits: ``[Q, C + 1]`` class log-probabilities averaged over the windows.
        objectness: ``[Q]`` objectness probabilities averaged over the windows.
        padded: ``(H', W')`` of the padded frames; frame_size: ``(H, W)`` of the frames.
    """

    mask_logits: Tensor
    class_logits: Tensor
    objectness: Tensor
    padded: tuple[int, int]
    frame_size: tuple[int, int]


def check_classifier(classifier: str) -> None:
    """Raise ``ValueError`` naming ``classifier`` unless it is one of :data:`CLASSIFIERS`.

    Args:
        classifier: the requested classifier.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier: expected one of {CLASSIFIERS}, got {classifier!r}")
