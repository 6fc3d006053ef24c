"""Random-Fourier position encoding (SAM's ``PositionEmbeddingRandom``; Uni-OVSeg's image and prompt code).

A fixed Gaussian matrix ``G [2, dim / 2]`` maps a normalised position ``p in [0, 1]^2`` to
``[sin(2 pi (2p - 1) G), cos(2 pi (2p - 1) G)]``. The same code serves the pixels of a feature map and
the corners of a prompt box, so queries and keys share one position space. ``G`` is a buffer named
``positional_encoding_gaussian_matrix`` (as in SAM and the released Uni-OVSeg checkpoint), drawn from
``N(0, scale^2)`` at construction and loaded with the weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from segblocks._validation import check_ndim

__all__ = ["RandomFourierPositionEncoding"]


class RandomFourierPositionEncoding(nn.Module):
    """Random-Fourier features of normalised ``(x, y)`` positions.

    Args:
        dim: output channels (even); the Gaussian matrix has ``dim / 2`` columns.
        scale: standard deviation of the Gaussian matrix (SAM: 1.0).
    """

    positional_encoding_gaussian_matrix: Tensor

    def __init__(self, *, dim: int, scale: float = 1.0) -> None:
        super().__init__()
        if dim <= 0 or dim % 2:
            raise ValueError(f"dim: expected a positive even int, got {dim}")
        if not scale > 0:
            raise ValueError(f"scale: expected a positive number, got {scale}")
        self.dim = dim
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, dim // 2))

    def encode(self, coords: Tensor) -> Tensor:
        """Encode normalised positions.

        Args:
            coords: ``[..., 2]`` ``(x, y)`` in ``[0, 1]`` (pixel centres or box corners).

        Returns:
            ``[..., dim]`` float32 codes.

        Raises:
            ValueError: when the last axis is not 2.
        """
        if coords.ndim == 0 or coords.shape[-1] != 2:
            raise ValueError(f"coords: expected [..., 2] (x, y), got shape {tuple(coords.shape)}")
        proj = (2 * coords.float() - 1) @ self.positional_encoding_gaussian_matrix.float()
        proj = 2 * math.pi * proj
        return torch.cat([proj.sin(), proj.cos()], dim=-1)

    def encode_points(self, points: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Encode pixel coordinates -> ``[..., dim]``.

        Args:
            points: ``[..., 2]`` ``(x, y)`` in pixels.
            image_size: ``(H, W)`` the coordinates are normalised by.
        """
        h, w = image_size
        return self.encode(points.float() / points.new_tensor([w, h], dtype=torch.float32))

    def forward(self, x: Tensor, num_frames: int | None = None) -> Tensor:
        """Encode every pixel centre of a map (the decoder's image position encoding).

        Args:
            x: ``[B, C, H, W]`` map (only its shape, device and dtype are read).
            num_frames: must be None (images only; clips are not supported).

        Returns:
            ``[B, dim, H, W]`` in ``x``'s dtype.

        Raises:
            ValueError: when ``x`` is not 4-D or ``num_frames`` is given.
        """
        check_ndim("x", x, 4, "[B, C, H, W]")
        if num_frames is not None:
            raise ValueError(f"num_frames: the random-Fourier encoding is 2D only, got {num_frames}")
        b, _, h, w = x.shape
        ys = (torch.arange(h, device=x.device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=x.device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [H, W, 2] (x, y)
        pos = self.encode(grid).permute(2, 0, 1)  # [dim, H, W]
        return pos.unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)
