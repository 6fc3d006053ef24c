"""Assembled models: Mask2Former, PosSAM, OMG-Seg, Uni-OVSeg, SEEM, and their predictors."""

from segblocks.zoo.mask2former import Mask2FormerPredictor, build_mask2former
from segblocks.zoo.omg_seg import OMGSegPredictor, build_omg_seg
from segblocks.zoo.possam import PosSAMPredictor, build_possam
from segblocks.zoo.seem import SEEMSession, build_seem
from segblocks.zoo.uni_ovseg import UniOVSegPredictor, build_uni_ovseg

__all__ = [
    "Mask2FormerPredictor",
    "OMGSegPredictor",
    "PosSAMPredictor",
    "SEEMSession",
    "UniOVSegPredictor",
    "build_mask2former",
    "build_omg_seg",
    "build_possam",
    "build_seem",
    "build_uni_ovseg",
]
