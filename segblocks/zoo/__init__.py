"""Assembled models: Mask2Former, PosSAM, OMG-Seg, Uni-OVSeg, SEEM."""

from segblocks.zoo.mask2former import build_mask2former
from segblocks.zoo.possam import build_possam

__all__ = ["build_mask2former", "build_possam"]
