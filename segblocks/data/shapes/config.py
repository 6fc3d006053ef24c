"""Configuration of the shapes world, validated on creation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from segblocks.data.shapes.categories import COLOURS, STUFF_CLASSES, THING_CLASSES, ClassSplit, check_names

__all__ = ["ShapesWorldConfig"]


def _check_range(name: str, value: tuple[float, float], lo: float, hi: float | None = None) -> None:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name}: expected a (min, max) pair with min <= max, got {value}")
    if value[0] < lo or (hi is not None and value[1] > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}: expected values in {bound}, got {value}")


@dataclass(frozen=True)
class ShapesWorldConfig:
    """How shapes-world images are drawn.

    Attributes:
        image_size: ``(H, W)`` in pixels, each at least 16.
        num_things: ``(min, max)`` number of things per image (inclusive).
        num_stuff_regions: ``(min, max)`` stuff regions covering the background, within 1..3.
        thing_radius: ``(min, max)`` thing radius as a fraction of ``min(H, W)``.
        thing_classes: thing class names that may appear.
        stuff_classes: stuff class names that may appear (at least ``num_stuff_regions[1]``).
        colours: colour names things are drawn in.
        min_visible: fraction of each thing (and of its part) that must stay visible after
            occlusion by things drawn above it.
        image_noise: standard deviation of the per-pixel Gaussian noise added to the image.
        caption_missing_rate: probability that the noisy caption drops an entity.
        caption_hallucination_rate: probability, per entity, that the noisy caption adds an
            absent one.
        split: the seen/unseen class partition for open-vocabulary experiments.
        seed: base seed; with the split name and the index it fixes every sample.
    """

    image_size: tuple[int, int] = (128, 128)
    num_things: tuple[int, int] = (1, 6)
    num_stuff_regions: tuple[int, int] = (1, 3)
    thing_radius: tuple[float, float] = (0.08, 0.2)
    thing_classes: tuple[str, ...] = THING_CLASSES
    stuff_classes: tuple[str, ...] = STUFF_CLASSES
    colours: tuple[str, ...] = tuple(COLOURS)
    min_visible: float = 0.5
    image_noise: float = 3.0
    caption_missing_rate: float = 0.2
    caption_hallucination_rate: float = 0.15
    split: ClassSplit = field(default_factory=ClassSplit)
    seed: int = 0

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h < 16 or w < 16:
            raise ValueError(f"image_size: expected (H, W) with both >= 16, got {self.image_size}")
        _check_range("num_things", self.num_things, 0)
        _check_range("num_stuff_regions", self.num_stuff_regions, 1, 3)
        _check_range("thing_radius", self.thing_radius, 1e-6, 0.5)
        check_names(self.thing_classes, THING_CLASSES, "thing_classes")
        check_names(self.stuff_classes, STUFF_CLASSES, "stuff_classes")
        check_names(self.colours, tuple(COLOURS), "colours")
        if len(self.stuff_classes) < self.num_stuff_regions[1]:
            raise ValueError(
                f"stuff_classes: {len(self.stuff_classes)} classes cannot fill "
                f"{self.num_stuff_regions[1]} distinct regions"
            )
        if not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible: expected a fraction in (0, 1], got {self.min_visible}")
        if self.image_noise < 0:
            raise ValueError(f"image_noise: expected >= 0, got {self.image_noise}")
        if self.min_radius_px < 3:
            raise ValueError(
                f"thing_radius: the smallest thing would be {self.min_radius_px:.1f} px in radius "
                f"at image_size {self.image_size}; expected >= 3 px (raise thing_radius or the size)"
            )
        if self.num_things[1] > self.capacity:
            raise ValueError(
                f"num_things: at most {self.capacity} things fit in a {h}x{w} image with "
                f"thing_radius {self.thing_radius}, got a maximum of {self.num_things[1]}"
            )

    @property
    def min_radius_px(self) -> float:
        """Smallest thing radius in pixels."""
        return self.thing_radius[0] * min(self.image_size)

    @property
    def max_radius_px(self) -> float:
        """Largest thing radius in pixels."""
        return self.thing_radius[1] * min(self.image_size)

    @property
    def capacity(self) -> int:
        """The most things that fit: half the image tiled by squares around the smallest things."""
        h, w = self.image_size
        return max(0, math.floor(0.5 * h * w / (2 * self.min_radius_px) ** 2))
