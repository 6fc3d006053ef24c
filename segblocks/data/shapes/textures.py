"""Stuff: procedural textures and the background layout of 1-3 regions.

Each stuff class has a texture a small network can tell apart from the others (colour *and* pattern):
sky is a smooth vertical gradient, grass has vertical streaks, water horizontal waves, sand fine
speckle, wall a brick pattern, road dark asphalt with a dashed line.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["stuff_layout", "stuff_texture"]

FloatImage = NDArray[np.float32]


def stuff_texture(name: str, size: tuple[int, int], rng: np.random.Generator) -> FloatImage:
    """Render the texture of a stuff class over a whole canvas.

    Args:
        name: a stuff class name.
        size: ``(H, W)`` of the canvas.
        rng: random generator for the noise.

    Returns:
        ``[H, W, 3]`` float32 RGB in ``[0, 255]``.
    """
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    if name == "sky":
        t = ys / max(h - 1, 1)
        base = np.stack([110 + 60 * t, 160 + 50 * t, 235 + 10 * t], axis=-1)
        return base + 3 * noise[..., None]
    if name == "grass":
        streaks = np.broadcast_to(rng.standard_normal(w).astype(np.float32)[None, :] * 18, (h, w))
        g = 140 + streaks + 10 * noise
        return np.stack([50 + 0.3 * streaks, g, 40 + 5 * noise], axis=-1)
    if name == "water":
        phase = rng.uniform(0, 2 * np.pi)
        waves = np.sin(ys * 0.9 + 0.35 * np.sin(xs * 0.25 + phase)) * 22
        return np.stack([20 + 0.2 * waves, 110 + waves, 150 + waves], axis=-1) + 4 * noise[..., None]
    if name == "sand":
        speckle = 25 * noise
        return np.stack([210 + speckle, 185 + speckle, 130 + 0.8 * speckle], axis=-1)
    if name == "wall":
        brick_h, brick_w = 8, 16
        row = (ys // brick_h).astype(np.int64)
        offset = np.where(row % 2 == 0, 0, brick_w // 2)
        mortar = ((ys % brick_h) < 1.5) | (((xs + offset) % brick_w) < 1.5)
        red = np.where(mortar, 200, 160).astype(np.float32)
        rest = np.where(mortar, 200, 70).astype(np.float32)
        return np.stack([red, rest, rest * 0.9], axis=-1) + 5 * noise[..., None]
    if name == "road":
        base = 70 + 8 * noise
        dash = (np.abs(ys - h / 2) < 1.5) & ((xs // 8) % 2 == 0)
        base = np.where(dash, 230, base)
        return np.stack([base, base, base * 0.95 + 4], axis=-1)
    raise ValueError(f"name: unknown stuff class {name!r}")


def stuff_layout(size: tuple[int, int], num_regions: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Split the canvas into bands separated by wavy, roughly horizontal boundaries.

    Args:
        size: ``(H, W)`` of the canvas.
        num_regions: number of bands, 1..3.
        rng: random generator.

    Returns:
        ``[H, W]`` int64 region index map with values ``0..num_regions-1``; every region is non-empty.
    """
    h, w = size
    if not 1 <= num_regions <= 3:
        raise ValueError(f"num_regions: expected 1..3, got {num_regions}")
    region = np.zeros((h, w), dtype=np.int64)
    if num_regions == 1:
        return region
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)[:, None]
    # Boundaries at evenly spread heights, jittered, so each band keeps at least ~1/6 of the height.
    heights = (np.arange(1, num_regions) / num_regions) * h
    heights += rng.uniform(-h / 12, h / 12, size=num_regions - 1)
    for y0 in heights:
        amplitude = rng.uniform(0.0, h / 16)
        period = rng.uniform(0.5, 1.5) * w
        phase = rng.uniform(0, 2 * np.pi)
        tilt = rng.uniform(-0.15, 0.15)
        boundary = y0 + amplitude * np.sin(2 * np.pi * xs / period + phase) + tilt * (xs - w / 2)
        region += (ys >= boundary[None, :]).astype(np.int64)
    # A steep tilt can swallow a band entirely; fall back to straight bands then.
    if len(np.unique(region)) != num_regions:
        region = np.minimum((ys * num_regions / h).astype(np.int64), num_regions - 1).repeat(w, axis=1)
    return region
