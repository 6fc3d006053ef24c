"""Fixed sine positional encodings of feature maps: 2D (DETR / Mask2Former) and 3D for clips (Mask2Former-VIS)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from segblocks._validation import check_ndim

__all__ = ["SinePositionEncoding", "SinePositionEncoding3D", "sine_ladder"]


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
        pos_y = sine_ladder(self._normalised(h, x.device), half, self.temperature)  # [H, half]
        pos_x = sine_ladder(self._normalised(w, x.device), half, self.temperature)  # [W, half]
        pos = torch.cat(
            (pos_y[:, None, :].expand(h, w, half), pos_x[None, :, :].expand(h, w, half)), dim=2
        )  # [H, W, dim]
        return pos.permute(2, 0, 1).unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)

    @staticmethod
    def _normalised(n: int, device: torch.device) -> Tensor:
        """Positions ``1..n`` scaled to ``(0, 2 pi]``."""
        return torch.arange(1, n + 1, device=device, dtype=torch.float32) / (n + 1e-6) * 2 * math.pi


def sine_ladder(positions: Tensor, channels: int, temperature: float = 10000.0) -> Tensor:
    """Sine codes of positions: ``[...]`` -> ``[..., channels]``, interleaved ``sin(p / t_0), cos(p / t_1), ...``.

    The frequencies follow DETR's ladder ``t_i = temperature ** (2 * floor(i / 2) / channels)``.

    Args:
        positions: ``[...]`` positions (already scaled, e.g. to ``(0, 2 pi]``).
        channels: output channels, even.
        temperature: base of the ladder.
    """
    freq = torch.arange(channels, device=positions.device, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(freq, 2, rounding_mode="floor") / channels)
    pos = positions.float()[..., None] / freq
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


class SinePositionEncoding3D(SinePositionEncoding):
    """Sine encoding of ``(t, y, x)`` for the frames of a clip (Mask2Former-VIS, OMG-Seg).

    The spatial part is :class:`SinePositionEncoding`'s; a sine ladder of the normalised frame index
    (all ``dim`` channels) is added to it, so the same pixel in two frames gets two codes and the
    decoder can attend over every frame of a clip at once. Without ``num_frames`` (images) it is
    exactly the 2D encoding.

    Args:
        dim: output channels, a positive multiple of 4.
        temperature: base of the geometric frequency ladder.
    """

    def forward(self, x: Tensor, num_frames: int | None = None) -> Tensor:
        """Encode the positions of the pixels of ``B`` clips of ``T`` frames.

        Args:
            x: ``[B * T, C, H, W]`` per-frame maps, frames of one clip consecutive (only the shape,
                device and dtype are read).
            num_frames: ``T``; None for images (the 2D encoding).

        Returns:
            ``[B * T, dim, H, W]`` in ``x``'s dtype.

        Raises:
            ValueError: when ``x`` is not 4-D or its batch is not a multiple of ``num_frames``.
        """
        check_ndim("x", x, 4, "[B * T, C, H, W]")
        if num_frames is None:
            return super().forward(x)
        if num_frames < 1 or x.shape[0] % num_frames:
            raise ValueError(f"num_frames: expected a divisor of the batch {x.shape[0]}, got {num_frames}")
        spatial = super().forward(x[:num_frames]).float()  # [T, dim, H, W], same for every frame
        temporal = sine_ladder(self._normalised(num_frames, x.device), self.dim, self.temperature)  # [T, dim]
        pos = spatial + temporal[:, :, None, None]
        return pos.repeat(x.shape[0] // num_frames, 1, 1, 1).to(x.dtype)
