"""Mask2Former (Cheng et al., CVPR 2022), the common base of the zoo, built from segblocks blocks."""

from segblocks.zoo.mask2former.build import build_backbone, build_mask2former
from segblocks.zoo.mask2former.config import VARIANTS, Mask2FormerConfig, get_config
from segblocks.zoo.mask2former.evaluate import Mask2FormerMetrics, evaluate
from segblocks.zoo.mask2former.model import Mask2Former
from segblocks.zoo.mask2former.predictor import Mask2FormerPrediction, Mask2FormerPredictor
from segblocks.zoo.mask2former.video_predictor import LinkedVideo, Mask2FormerVideoPredictor

__all__ = [
    "VARIANTS",
    "LinkedVideo",
    "Mask2Former",
    "Mask2FormerConfig",
    "Mask2FormerMetrics",
    "Mask2FormerPrediction",
    "Mask2FormerPredictor",
    "Mask2FormerVideoPredictor",
    "build_backbone",
    "build_mask2former",
    "evaluate",
    "get_config",
]
