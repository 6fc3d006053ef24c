"""Fixed 2D sine positional encoding of feature maps (DETR / Mask2Former style)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from segblocks._validation import check_ndim

__all__ = ["SinePositionEncoding"]


class SinePositionEncoding(nn.Module):
    """Sine/cosine encoding of the normalised ``(y, x)`` position of every pixel of a map.

    Half of the ``dim`` channels encode ``y``, half ``x``; positions are pixel centres normalised to
    ``(0, 2 pi]`` so the encoding does not depend on the map size. It has no parameters and no
    buffers; the result depends only on the map's shape, device and dtype.

    Args:
        dim: output channels, even.
        temperature: base of the geometric frequency ladder.
    """

    def __init__(self, *, dim: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if dim <= 0 or dim % 4:
            raise ValueError(f"dim: expected a positive multiple of 4, got {dim}")
        if temperature <= 0:
            raise ValueError(f"temperature: expected a positive number, got {temperature}")
        self.dim = dim
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        """Encode the positions of ``x``'s pixels.

        Args:
            x: ``[B, C, H, W]`` map (only its shape, device and dtype are read).

        Returns:
            ``[B, dim, H, W]`` positional encoding in ``x``'s dtype.

        Raises:
            ValueError: when ``x`` is not 4-D.
        """
        check_ndim("x", x, 4, "[B, C, H, W]")
        b, _, h, w = x.shape
        half = self.dim // 2
        eps = 1e-6
        y = torch.arange(1, h + 1, device=x.device, dtype=torch.float32) / (h + eps) * 2 * math.pi
        xs = torch.arange(1, w + 1, device=x.device, dtype=torch.float32) / (w + eps) * 2 * math.pi
        freq = torch.arange(half, device=x.device, dtype=torch.float32)
        freq = self.temperature ** (2 * torch.div(freq, 2, rounding_mode="floor") / half)
        pos_y = y[:, None] / freq  # [H, half]
        pos_x = xs[:, None] / freq  # [W, half]
        pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
        pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
        pos = torch.cat(
            (pos_y[:, None, :].expand(h, w, half), pos_x[None, :, :].expand(h, w, half)), dim=2
        )  # [H, W, dim]
        return pos.permute(2, 0, 1).unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)
