"""What every zoo model shares and no zoo model owns: the decoding configuration and its builders.

Zoo model packages import from here, never from each other.
"""

from segblocks.zoo.common.build import build_criterion, build_mask_decoder, build_pixel_decoder
from segblocks.zoo.common.config import WORLD_DECODING, MaskDecodingConfig

__all__ = [
    "WORLD_DECODING",
    "MaskDecodingConfig",
    "build_criterion",
    "build_mask_decoder",
    "build_pixel_decoder",
]
