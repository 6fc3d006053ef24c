"""A plain FPN pixel decoder (MaskFormer's): top-down pathway with lateral 1x1 and output 3x3 convs."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from segblocks.decoders.pixel_decoder import PixelDecoder
from segblocks.decoders.pixel_decoder_output import PixelDecoderOutput, check_backbone_features
from segblocks.structures import ShapeSpec

__all__ = ["FPNPixelDecoder", "conv_norm_relu"]


def conv_norm_relu(
    in_channels: int, out_channels: int, kernel_size: int, *, groups: int, relu: bool = True
) -> nn.Sequential:
    """``Conv2d`` (no bias, same padding) + ``GroupNorm(groups)`` (+ ReLU), Kaiming-initialised.

    Args:
        in_channels: input channels.
        out_channels: output channels, divisible by ``groups``.
        kernel_size: odd kernel size (1 or 3 in the pixel decoders).
        groups: GroupNorm groups.
        relu: end with a ReLU.

    Returns:
        The ``nn.Sequential`` block.

    Raises:
        ValueError: when ``out_channels`` is not divisible by ``groups``.
    """
    if out_channels % groups:
        raise ValueError(f"norm_groups: {out_channels} channels are not divisible into {groups} groups")
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    layers: list[nn.Module] = [conv, nn.GroupNorm(groups, out_channels)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FPNPixelDecoder(PixelDecoder):
    """Feature pyramid over the backbone levels, ending in stride-4 mask features.

    The coarsest level goes through a 3x3 conv; every finer level adds its lateral 1x1 projection to
    the upsampled coarser output and goes through a 3x3 conv. The three coarsest outputs are the
    multi-scale features for the mask decoder (low to high resolution); a 1x1 conv of the finest
    output gives the mask features.

    Args:
        input_shape: ``{name: ShapeSpec}`` of the backbone maps to use (e.g. ``res2..res5``).
        conv_dim: channels of the pyramid.
        mask_dim: channels of the mask features.
        num_feature_levels: how many of the coarsest outputs feed the mask decoder.
        norm_groups: GroupNorm groups.
    """

    def __init__(
        self,
        *,
        input_shape: Mapping[str, ShapeSpec],
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_feature_levels: int = 3,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if len(input_shape) < 1:
            raise ValueError("input_shape: expected at least one feature map")
        if not 1 <= num_feature_levels <= len(input_shape):
            raise ValueError(
                f"num_feature_levels: expected 1..{len(input_shape)} (the number of input maps), "
                f"got {num_feature_levels}"
            )
        # coarsest first
        self.in_features = sorted(input_shape, key=lambda k: -input_shape[k].stride)
        self.input_shape = dict(input_shape)
        self.num_feature_levels = num_feature_levels
        self.conv_dim = conv_dim
        self.mask_dim = mask_dim
        self.lateral = nn.ModuleList()
        self.output = nn.ModuleList()
        for i, name in enumerate(self.in_features):
            c = input_shape[name].channels
            self.lateral.append(
                nn.Identity() if i == 0 else conv_norm_relu(c, conv_dim, 1, groups=norm_groups, relu=False)
            )
            self.output.append(conv_norm_relu(c if i == 0 else conv_dim, conv_dim, 3, groups=norm_groups))
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)

    @property
    def mask_stride(self) -> int:
        """Stride of the mask features (that of the finest input map)."""
        return self.input_shape[self.in_features[-1]].stride

    def forward(self, features: Mapping[str, Tensor]) -> PixelDecoderOutput:
        """Build the pyramid.

        Args:
            features: backbone maps ``{name: [B, C, H_s, W_s]}`` with the names of ``input_shape``.

        Returns:
            :class:`PixelDecoderOutput`.

        Raises:
            ValueError: on a missing map or a channel mismatch.
        """
        check_backbone_features(features, self.input_shape, self.in_features)
        outputs: list[Tensor] = []
        y: Tensor | None = None
        for i, name in enumerate(self.in_features):
            x = features[name]
            if y is None:
                y = self.output[i](x)
            else:
                lateral = self.lateral[i](x)
                y = self.output[i](lateral + F.interpolate(y, size=x.shape[-2:], mode="nearest"))
            outputs.append(y)
        assert y is not None
        return PixelDecoderOutput(
            mask_features=self.mask_features(y), multi_scale_features=outputs[: self.num_feature_levels]
        )
