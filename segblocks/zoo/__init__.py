"""Assembled models: Mask2Former, PosSAM, OMG-Seg, Uni-OVSeg, SEEM."""
