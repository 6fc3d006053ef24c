"""Assembled models: Mask2Former, PosSAM, OMG-Seg, Uni-OVSeg, SEEM."""

from segblocks.zoo.mask2former import build_mask2former

__all__ = ["build_mask2former"]
