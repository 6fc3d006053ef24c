"""The shapes world: a seeded generator of annotated images and video clips.

Every sample is a pure function of ``(config.seed, split, index)``: the same triple always gives the
same image and annotations, and the train/val/test splits draw from disjoint seed streams.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from segblocks.data.shapes.config import ShapesWorldConfig
from segblocks.data.shapes.geometry import shape_mask
from segblocks.data.shapes.language import clean_caption, noisy_caption, referring_expressions
from segblocks.data.shapes.render import Stuff, Thing, render_scene
from segblocks.data.shapes.sample import ShapesClip, ShapesSample
from segblocks.data.shapes.textures import stuff_layout

__all__ = ["SPLITS", "ShapesWorld"]

logger = logging.getLogger(__name__)

#: Split names; each has its own seed stream.
SPLITS = ("train", "val", "test")
_PLACEMENT_TRIES = 40
_IMAGE_STREAM, _CLIP_STREAM = 0, 1


class ShapesWorld:
    """Draws shapes-world samples and clips for one split.

    Args:
        config: how images are drawn (default :class:`ShapesWorldConfig`).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Example:
        >>> world = ShapesWorld(ShapesWorldConfig(image_size=(64, 64)), split="val")
        >>> sample = world.sample(0)
        >>> sample.image.shape
        (64, 64, 3)
    """

    def __init__(self, config: ShapesWorldConfig | None = None, *, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        self.config = config if config is not None else ShapesWorldConfig()
        self.split = split

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        if index < 0:
            raise ValueError(f"index: expected a non-negative int, got {index}")
        seq = np.random.SeedSequence([self.config.seed, SPLITS.index(self.split), stream, index])
        return np.random.default_rng(seq)

    @property
    def radius_range(self) -> tuple[float, float]:
        """``(min, max)`` thing radius in pixels."""
        return self.config.min_radius_px, self.config.max_radius_px

    # -- scene pieces -------------------------------------------------------------------------
    def _draw_stuff(self, rng: np.random.Generator) -> Stuff:
        cfg = self.config
        n = int(rng.integers(cfg.num_stuff_regions[0], cfg.num_stuff_regions[1] + 1))
        classes = tuple(str(c) for c in rng.choice(cfg.stuff_classes, size=n, replace=False))
        return Stuff.draw(stuff_layout(cfg.image_size, n, rng), classes, rng)

    def _random_look(self, rng: np.random.Generator) -> tuple[str, str, float]:
        cfg = self.config
        return (
            str(rng.choice(cfg.thing_classes)),
            str(rng.choice(cfg.colours)),
            float(rng.uniform(0, 2 * math.pi)),
        )

    def _place_things(
        self, rng: np.random.Generator
    ) -> tuple[list[Thing], list[tuple[np.ndarray, np.ndarray]]]:
        """Place things bottom to top so every thing and its part keep ``min_visible`` of their area.

        A thing that cannot be placed in ``_PLACEMENT_TRIES`` tries (with shrinking radius) is left
        out, so a crowded image may hold fewer things than drawn for it.
        """
        cfg = self.config
        h, w = cfg.image_size
        lo, hi = self.radius_range
        count = int(rng.integers(cfg.num_things[0], cfg.num_things[1] + 1))
        things: list[Thing] = []
        masks: list[tuple[np.ndarray, np.ndarray]] = []
        visible: list[np.ndarray] = []
        visible_part: list[np.ndarray] = []
        for _ in range(count):
            shape, colour, angle = self._random_look(rng)
            for attempt in range(_PLACEMENT_TRIES):
                radius = float(rng.uniform(lo, hi - (hi - lo) * attempt / _PLACEMENT_TRIES))
                center = (float(rng.uniform(radius, w - radius)), float(rng.uniform(radius, h - radius)))
                whole, part = shape_mask(shape, center=center, radius=radius, angle=angle, size=(h, w))
                ok = part.any() and all(
                    (v & ~whole).sum() >= cfg.min_visible * m[0].sum()
                    and (vp & ~whole).sum() >= cfg.min_visible * m[1].sum()
                    for v, vp, m in zip(visible, visible_part, masks)
                )
                if ok:
                    break
            else:
                logger.debug("left out a %s after %d placement tries", shape, _PLACEMENT_TRIES)
                continue
            visible = [v & ~whole for v in visible] + [whole]
            visible_part = [vp & ~whole for vp in visible_part] + [part]
            things.append(Thing(len(things) + 1, shape, colour, center, radius, angle))
            masks.append((whole, part))
        return things, masks

    def _annotate_language(self, sample: ShapesSample, rng: np.random.Generator) -> ShapesSample:
        cfg = self.config
        caption, entities = clean_caption(sample.segments, self.radius_range)
        noisy, noisy_entities = noisy_caption(
            sample.segments,
            self.radius_range,
            rng,
            missing_rate=cfg.caption_missing_rate,
            hallucination_rate=cfg.caption_hallucination_rate,
        )
        return replace(
            sample,
            caption=caption,
            noisy_caption=noisy,
            caption_entities=entities,
            noisy_entities=noisy_entities,
            referring=referring_expressions(sample.segments),
        )

    # -- public ---------------------------------------------------------------------------------
    def sample(self, index: int) -> ShapesSample:
        """The image number ``index`` of this split, with every annotation."""
        rng = self._rng(index, _IMAGE_STREAM)
        stuff = self._draw_stuff(rng)
        things, masks = self._place_things(rng)
        sample = render_scene(stuff, things, masks, noise=self.config.image_noise, rng=rng)
        return self._annotate_language(sample, rng)

    def sample_clip(self, index: int, *, num_frames: int = 8) -> ShapesClip:
        """The clip number ``index`` of this split: ``num_frames`` frames of moving things.

        Things move with constant velocity and spin; about a fifth of them enter the view during
        the clip and a fifth leave it; the rest bounce off the borders. Depth order is fixed, so
        things pass over and under each other (occlusion). Stuff is static.
        """
        if num_frames < 1:
            raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
        cfg = self.config
        h, w = cfg.image_size
        rng = self._rng(index, _CLIP_STREAM)
        stuff = self._draw_stuff(rng)
        lo, hi = self.radius_range
        count = int(rng.integers(cfg.num_things[0], cfg.num_things[1] + 1))
        tracks = []
        for track_id in range(1, count + 1):
            shape, colour, angle = self._random_look(rng)
            radius = float(rng.uniform(lo, hi))
            spin = float(rng.uniform(-0.15, 0.15))
            mode = str(rng.choice(["stay", "enter", "leave"], p=[0.6, 0.2, 0.2]))
            xs, ys = _trajectory(mode, radius, (h, w), num_frames, rng)
            tracks.append((track_id, shape, colour, radius, angle, spin, xs, ys))
        frames = []
        for t in range(num_frames):
            things = [
                Thing(tid, shape, colour, (float(xs[t]), float(ys[t])), radius, angle + spin * t)
                for tid, shape, colour, radius, angle, spin, xs, ys in tracks
            ]
            masks = [
                shape_mask(th.shape, center=th.center, radius=th.radius, angle=th.angle, size=(h, w))
                for th in things
            ]
            frame = render_scene(stuff, things, masks, noise=cfg.image_noise, rng=rng)
            frames.append(self._annotate_language(frame, rng))
        return ShapesClip(frames)


def _trajectory(
    mode: str, radius: float, size: tuple[int, int], num_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Centre positions ``(xs, ys)``, each ``[num_frames]``, for one moving thing."""
    h, w = size
    t = np.arange(num_frames, dtype=np.float64)
    if mode == "stay":
        start = np.array([rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)])
        velocity = rng.uniform(-2.0, 2.0, size=2) * min(h, w) / 128
        lo, hi = np.array([radius, radius]), np.array([w - radius, h - radius])
        pos = start[None] + velocity[None] * t[:, None]
        span = np.maximum(hi - lo, 1e-6)
        # Reflect off the borders: fold the free path into [lo, hi].
        folded = np.mod(pos - lo, 2 * span)
        pos = lo + np.where(folded > span, 2 * span - folded, folded)
        return pos[:, 0], pos[:, 1]
    # enter / leave: cross one border; "enter" runs a "leave" path backwards.
    side = int(rng.integers(4))
    inside = np.array([rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)])
    outside = inside.copy()
    axis, sign = (0, -1.0) if side == 0 else (0, 1.0) if side == 1 else (1, -1.0) if side == 2 else (1, 1.0)
    extent = (w, h)[axis]
    outside[axis] = -radius - 1 if sign < 0 else extent + radius + 1
    # Cross the border in the middle of the clip; from the start/end point to the outside point.
    frac = t / max(num_frames - 1, 1)
    path = inside[None] + (outside - inside)[None] * frac[:, None]
    if mode == "enter":
        path = path[::-1]
    return path[:, 0], path[:, 1]
