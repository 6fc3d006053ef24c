"""A simple feature pyramid (ViTDet style): one plain-ViT map -> maps at strides 4, 8, 16, 32."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segblocks._validation import check_ndim

__all__ = ["LayerNorm2d", "SimpleFeaturePyramid"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map.

    Args:
        channels: C.
        eps: added to the variance.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise every location's channel vector.

        Args:
            x: ``[B, C, H, W]``.

        Returns:
            ``[B, C, H, W]``.
        """
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _rescale(channels: int, scale: float) -> tuple[nn.Module, int]:
    """Up-sample (transposed convs) or down-sample (max-pool) by a power of two; returns out channels."""
    steps = round(math.log2(scale))
    layers: list[nn.Module] = []
    if steps > 0:
        for i in range(steps):
            out = max(channels // 2, 1)
            layers.append(nn.ConvTranspose2d(channels, out, kernel_size=2, stride=2))
            if i < steps - 1:
                layers += [LayerNorm2d(out), nn.GELU()]
            channels = out
    else:
        layers += [nn.MaxPool2d(kernel_size=2, stride=2) for _ in range(-steps)]
    return (nn.Sequential(*layers) if layers else nn.Identity()), channels


class SimpleFeaturePyramid(nn.Module):
    """Builds ``res2..res5`` from the single stride-``in_stride`` map of a plain ViT.

    Each output level rescales the map by a power of two (transposed 2x2 convolutions to go finer,
    2x2 max-pooling to go coarser, as in ViTDet), then applies a 1x1 conv + LayerNorm and a 3x3 conv +
    LayerNorm to ``out_channels``. Encoders whose stride is not a power of two (patch 14) are first
    resampled bilinearly to stride 16.

    Args:
        in_channels: channels of the input map.
        in_stride: stride of the input map (the ViT patch size).
        out_channels: channels of every output level.
        strides: output strides, each a power of two.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        in_stride: int,
        out_channels: int = 256,
        strides: Sequence[int] = (4, 8, 16, 32),
    ) -> None:
        super().__init__()
        if in_channels <= 0 or out_channels <= 0 or in_stride <= 0:
            raise ValueError(
                f"in_channels, in_stride, out_channels: expected positive ints, got "
                f"{in_channels}, {in_stride}, {out_channels}"
            )
        bad = [s for s in strides if s <= 0 or s & (s - 1)]
        if bad or not strides:
            raise ValueError(f"strides: expected powers of two, got {tuple(strides)}")
        self.in_channels = in_channels
        self.in_stride = in_stride
        # A non power-of-two patch stride is resampled to the nearest power of two, 16 for patch 14.
        self.base_stride = in_stride if in_stride & (in_stride - 1) == 0 else 2 ** round(math.log2(in_stride))
        self.strides = tuple(strides)
        self.out_channels = out_channels
        self.levels = nn.ModuleDict()
        for s in self.strides:
            rescale, ch = _rescale(in_channels, self.base_stride / s)
            self.levels[f"res{int(math.log2(s))}"] = nn.Sequential(
                rescale,
                nn.Conv2d(ch, out_channels, kernel_size=1, bias=False),
                LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
                LayerNorm2d(out_channels),
            )

    def forward(self, x: Tensor, image_size: tuple[int, int] | None = None) -> dict[str, Tensor]:
        """Build the pyramid.

        Args:
            x: ``[B, C, h, w]`` map at stride ``in_stride``.
            image_size: ``(H, W)`` of the input image; needed only when ``in_stride`` is not a power
                of two (to resample the map to ``H / base_stride``).

        Returns:
            ``{"res{log2(s)}": [B, out_channels, H / s, W / s]}`` for every stride ``s``.

        Raises:
            ValueError: on a wrong rank or channel count, or a missing ``image_size`` when needed.
        """
        check_ndim("x", x, 4, "[B, C, h, w]")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} channels, got shape {tuple(x.shape)}")
        if self.base_stride != self.in_stride:
            if image_size is None:
                raise ValueError(f"image_size: required for in_stride={self.in_stride} (not a power of two)")
            size = (image_size[0] // self.base_stride, image_size[1] // self.base_stride)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return {name: level(x) for name, level in self.levels.items()}
