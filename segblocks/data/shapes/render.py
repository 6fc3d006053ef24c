"""Turning a scene (stuff layout + things in depth order) into an image and its annotations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from segblocks.data.shapes.categories import COLOURS, category_id
from segblocks.data.shapes.sample import Segment, ShapesSample
from segblocks.data.shapes.textures import stuff_texture

__all__ = ["STUFF_ID_BASE", "Stuff", "Thing", "render_scene"]

#: Stuff segment ids are ``STUFF_ID_BASE + region index``; thing ids are their track ids (< this).
STUFF_ID_BASE = 1000

BoolMap = NDArray[np.bool_]


@dataclass(frozen=True)
class Thing:
    """A thing's pose in one frame; ``track_id`` is its segment id, stable across a clip."""

    track_id: int
    shape: str
    colour: str
    center: tuple[float, float]
    radius: float
    angle: float


@dataclass(frozen=True)
class Stuff:
    """The background: a region map, one stuff class per region, and the textured canvas."""

    regions: NDArray[np.int64]
    classes: tuple[str, ...]
    canvas: NDArray[np.float32]

    @classmethod
    def draw(cls, regions: NDArray[np.int64], classes: tuple[str, ...], rng: np.random.Generator) -> Stuff:
        """Texture each region with its class.

        Args:
            regions: ``[H, W]`` int64 region index map.
            classes: the stuff class name of each region.
            rng: random generator for the textures.
        """
        size = (int(regions.shape[0]), int(regions.shape[1]))
        canvas = np.zeros((*size, 3), dtype=np.float32)
        for r, name in enumerate(classes):
            inside = regions == r
            canvas[inside] = stuff_texture(name, size, rng)[inside]
        return cls(regions, classes, canvas)


def _shade(colour: str, factor: float) -> NDArray[np.float32]:
    rgb = np.array(COLOURS[colour], dtype=np.float32)
    if rgb.mean() < 60:  # darkening black is invisible: lighten it instead
        return np.minimum(rgb + 150 * (1 - factor), 255)
    return rgb * factor


def _outline(mask: BoolMap) -> BoolMap:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _segment(segment_id: int, cat: int, is_thing: bool, mask: BoolMap, **attrs: object) -> Segment | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    bbox = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    centroid = (float(xs.mean() + 0.5), float(ys.mean() + 0.5))
    return Segment(segment_id, cat, is_thing, bbox, len(xs), centroid=centroid, **attrs)  # type: ignore[arg-type]


def render_scene(
    stuff: Stuff,
    things: list[Thing],
    masks: list[tuple[BoolMap, BoolMap]],
    *,
    noise: float,
    rng: np.random.Generator,
) -> ShapesSample:
    """Paint the things over the stuff in depth order and derive every pixel annotation.

    Args:
        stuff: the background.
        things: things from bottom to top.
        masks: ``(whole, part)`` ``[H, W]`` bool masks of each thing, unoccluded.
        noise: standard deviation of the Gaussian pixel noise.
        rng: random generator for the noise.

    Returns:
        A :class:`ShapesSample` without language annotations (captions, referring expressions).
    """
    h, w = stuff.regions.shape
    image = stuff.canvas.copy()
    panoptic = (STUFF_ID_BASE + stuff.regions).astype(np.int32)
    semantic = np.zeros((h, w), dtype=np.int64)
    for r, name in enumerate(stuff.classes):
        semantic[stuff.regions == r] = category_id(name)
    for thing, (whole, part) in zip(things, masks):
        image[whole] = np.array(COLOURS[thing.colour], dtype=np.float32)
        image[part] = _shade(thing.colour, 0.6)
        image[_outline(whole)] = _shade(thing.colour, 0.35)
        panoptic[whole] = thing.track_id
        semantic[whole] = category_id(thing.shape)
    if noise > 0:
        image += rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    segments: list[Segment] = []
    parts: list[BoolMap] = []
    for thing, (_, part) in zip(things, masks):
        visible = panoptic == thing.track_id
        seg = _segment(
            thing.track_id,
            category_id(thing.shape),
            True,
            visible,
            colour=thing.colour,
            radius=float(thing.radius),
        )
        if seg is not None:
            segments.append(seg)
            parts.append(part & visible)
    for r, name in enumerate(stuff.classes):
        seg = _segment(STUFF_ID_BASE + r, category_id(name), False, panoptic == STUFF_ID_BASE + r)
        if seg is not None:
            segments.append(seg)
    part_masks = np.stack(parts) if parts else np.zeros((0, h, w), dtype=bool)
    return ShapesSample(
        image=np.clip(image, 0, 255).astype(np.uint8),
        panoptic=panoptic,
        segments=segments,
        semantic=semantic,
        part_masks=part_masks,
    )
