"""Assembled models: Mask2Former, PosSAM, OMG-Seg, Uni-OVSeg, SEEM, and their predictors."""

from segblocks.zoo.mask2former import Mask2FormerPredictor, build_mask2former
from segblocks.zoo.possam import PosSAMPredictor, build_possam
from segblocks.zoo.seem import SEEMSession, build_seem

__all__ = [
    "Mask2FormerPredictor",
    "PosSAMPredictor",
    "SEEMSession",
    "build_mask2former",
    "build_possam",
    "build_seem",
]
