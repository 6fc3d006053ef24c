"""What every pixel decoder shares: ``features -> PixelDecoderOutput`` and the stride of its mask features."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping

from torch import Tensor, nn

from segblocks.decoders.pixel_decoder_output import PixelDecoderOutput

__all__ = ["PixelDecoder"]


class PixelDecoder(nn.Module, metaclass=ABCMeta):
    """Base class: ``forward(features {"res2".."res5"}) -> PixelDecoderOutput``.

    A model reads :attr:`mask_stride` to know the resolution of the mask logits (padding targets,
    upsampling results) without knowing which pixel decoder it holds.
    """

    @property
    @abstractmethod
    def mask_stride(self) -> int:
        """Stride of ``mask_features`` relative to the input image (Mask2Former: 4)."""

    @abstractmethod
    def forward(self, features: Mapping[str, Tensor]) -> PixelDecoderOutput:
        """Build mask features and the multi-scale maps from the backbone ``features``."""
