"""Where a pixel is, written into its features: a learned projection of a Fourier code of its position.

Mask logits are dot products between a query and per-pixel features, so a query can only ask for
"pixels that look like this" unless the features say where they are. A positional encoding added to
attention keys (DETR) steers attention but never reaches the features' values or the mask logits.
:class:`FourierPositionFeatures` adds ``W_l code(x, y)`` to every pixel of feature map ``l``
(CoordConv in Fourier form): ``code`` holds ``sin`` and ``cos`` of ``2 pi f x`` and ``2 pi f y`` for
frequencies ``f`` on a geometric ladder from half a cycle to ``max_cycles`` cycles per image: the
half cycle keeps opposite borders apart (whole cycles alone would code them alike), the highest
lets a linear read-out place a bump of about ``1 / max_cycles`` of the image anywhere. Positions are pixel centres
normalised to ``[0, 1]`` over each map, so every level of a pyramid shares one position space, and a
point sampled from a map carries the code of where it was sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segblocks._validation import check_ndim

__all__ = ["FourierPositionFeatures", "fourier_position_code"]


def fourier_position_code(height: int, width: int, frequencies: Tensor) -> Tensor:
    """The Fourier code of every pixel centre of an ``height x width`` map.

    Args:
        height: rows ``H``.
        width: columns ``W``.
        frequencies: ``[F]`` cycles per image.

    Returns:
        ``[4 F, H, W]`` float32: ``sin, cos`` of ``2 pi f y``, then of ``2 pi f x``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height, width: expected positive sizes, got {height} x {width}")
    freq = frequencies.float()
    ys = (torch.arange(height, device=freq.device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=freq.device, dtype=torch.float32) + 0.5) / width
    ay = 2 * math.pi * ys[:, None] * freq  # [H, F]
    ax = 2 * math.pi * xs[:, None] * freq  # [W, F]
    code_y = torch.cat([ay.sin(), ay.cos()], dim=1)  # [H, 2F]
    code_x = torch.cat([ax.sin(), ax.cos()], dim=1)  # [W, 2F]
    return torch.cat(
        [code_y[:, None, :].expand(height, width, -1), code_x[None, :, :].expand(height, width, -1)], dim=2
    ).permute(2, 0, 1)


class FourierPositionFeatures(nn.Module):
    """Add a learned projection of each pixel's Fourier position code to feature maps.

    Args:
        channels: channels of each map it will be given, in order (e.g. mask features, then the
            pyramid levels).
        num_frequencies: ``F`` frequencies per axis (the code has ``4 F`` channels).
        max_cycles: the highest frequency, in cycles per image (the lowest is half a cycle).
        zero_init: start the projections at zero, so the maps start unchanged and position enters only
            as far as training asks for it (the default initialisation adds it from the start).
    """

    frequencies: Tensor

    def __init__(
        self,
        *,
        channels: Sequence[int],
        num_frequencies: int = 8,
        max_cycles: float = 8.0,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) == 0 or any(int(c) <= 0 for c in channels):
            raise ValueError(f"channels: expected one positive channel count per map, got {list(channels)}")
        if num_frequencies <= 0:
            raise ValueError(f"num_frequencies: expected a positive int, got {num_frequencies}")
        if not max_cycles >= 1.0:
            raise ValueError(f"max_cycles: expected at least 1 cycle per image, got {max_cycles}")
        self.channels = tuple(int(c) for c in channels)
        ladder = 0.5 * torch.logspace(0.0, math.log2(2.0 * max_cycles), num_frequencies, base=2.0)
        self.register_buffer("frequencies", ladder, persistent=False)  # rebuilt from the arguments
        convs = [nn.Conv2d(4 * num_frequencies, c, kernel_size=1) for c in self.channels]
        if zero_init:
            for conv in convs:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        self.proj = nn.ModuleList(convs)

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        """The maps with their pixels' projected position codes added.

        Args:
            maps: ``len(channels)`` tensors ``[B, C_l, H_l, W_l]``.

        Returns:
            The same shapes and dtypes.

        Raises:
            ValueError: on a wrong number of maps or a map of other channels.
        """
        if len(maps) != len(self.proj):
            raise ValueError(f"maps: expected {len(self.proj)} feature maps, got {len(maps)}")
        out = []
        for i, (x, proj) in enumerate(zip(maps, self.proj)):
            check_ndim(f"maps[{i}]", x, 4, "[B, C, H, W]")
            if x.shape[1] != self.channels[i]:
                raise ValueError(f"maps[{i}]: expected {self.channels[i]} channels, got {tuple(x.shape)}")
            code = fourier_position_code(int(x.shape[-2]), int(x.shape[-1]), self.frequencies)
            out.append(x + proj(code[None].to(x.dtype)))
        return out
