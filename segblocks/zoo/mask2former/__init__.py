"""Mask2Former (Cheng et al., CVPR 2022), the common base of the zoo, built from segblocks blocks."""

from segblocks.zoo.mask2former.build import build_backbone, build_mask2former
from segblocks.zoo.mask2former.config import SCALES, Mask2FormerConfig, get_config
from segblocks.zoo.mask2former.evaluate import Mask2FormerMetrics, evaluate, targets_to_panoptic
from segblocks.zoo.mask2former.model import TASKS, Mask2Former, Mask2FormerPrediction

__all__ = [
    "SCALES",
    "TASKS",
    "Mask2Former",
    "Mask2FormerConfig",
    "Mask2FormerMetrics",
    "Mask2FormerPrediction",
    "build_backbone",
    "build_mask2former",
    "evaluate",
    "get_config",
    "targets_to_panoptic",
]
