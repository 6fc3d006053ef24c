"""What Uni-OVSeg returns: the answers to a batch of prompts, and open-vocabulary results."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from segblocks.decoders.multigranularity_prompts import PromptTokens
from segblocks.structures import MaskPredictions, PanopticResult, SemanticResult

__all__ = ["PromptOutputs", "Proposals", "UniOVSegPrediction"]


@dataclass
class PromptOutputs:
    """The decoder's answers to a batch of prompts (final layer; earlier layers in ``aux``).

    Attributes:
        points: the point view: ``mask_logits [B, P * k, h, w]`` and ``iou_scores [B, P * k]`` (logits)
            of the ``k`` multi-granularity tokens of every prompt.
        boxes: the box view: ``mask_logits [B, P, h, w]`` and ``iou_scores [B, P]`` of the
            single-mask token of every prompt.
        tokens: the prompt tokens (prompt counts, which prompts are boxes).
    """

    points: MaskPredictions
    boxes: MaskPredictions
    tokens: PromptTokens


@dataclass
class Proposals:
    """Class-agnostic masks of one image from the point grid, after the IoU filter and inner-NMS.

    Attributes:
        mask_logits: ``[M, H, W]`` logits at the image size.
        scores: ``[M]`` predicted IoU in ``[0, 1]``.
        num_candidates: candidate masks before filtering (grid points x k).
    """

    mask_logits: Tensor
    scores: Tensor
    num_candidates: int

    @property
    def masks(self) -> Tensor:
        """``[M, H, W]`` bool."""
        return self.mask_logits > 0


@dataclass
class UniOVSegPrediction:
    """Open-vocabulary results of one image.

    Attributes:
        semantic: per-pixel class ids into the vocabulary.
        panoptic: segments with class ids into the vocabulary.
        proposals: the named class-agnostic masks.
        class_probs: ``[M, C]`` each proposal's class probabilities.
    """

    semantic: SemanticResult
    panoptic: PanopticResult
    proposals: Proposals
    class_probs: Tensor
