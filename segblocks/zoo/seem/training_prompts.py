"""Training prompts on the shapes world: SEEM's visual sampler types, referring texts, compositions.

Per image (REFERENCE 2.4, sizes scaled from 1024 px to the world's 128 px):

* up to ``max_objects`` segments (things and stuff) get a visual prompt whose type is drawn evenly
  from point (1-3 clicks inside), polygon (through 3-9 in-mask points, not clipped to the mask),
  scribble (a thin stroke through 2-5 in-mask points, cut to the mask) and circle (a thick stroke,
  cut to the mask);
* up to ``max_referring`` referring expressions become text prompts; with probability
  ``composition_rate`` one of them also gets a click inside its object (a visual + text composition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from segblocks.data.shapes.prompts import sample_point, sample_polygon, sample_scribble
from segblocks.data.shapes.sample import ShapesSample
from segblocks.decoders import ObjectRegions, click_region
from segblocks.structures import Targets
from segblocks.zoo.seem.prompt_batch import PromptBatch

__all__ = ["SAMPLER_TYPES", "ImagePrompts", "collate_prompts", "draw_visual_prompt", "image_prompts"]

#: SEEM's training sampler types, drawn with equal probability.
SAMPLER_TYPES = ("point", "polygon", "scribble", "circle")


def draw_visual_prompt(
    kind: str, mask: NDArray[np.bool_], rng: np.random.Generator, *, radius: int = 1
) -> NDArray[np.bool_]:
    """One visual prompt of ``kind`` for an object, as a region ``[H, W]`` bool.

    Args:
        kind: ``"point"``, ``"polygon"``, ``"scribble"``, ``"circle"``, or for evaluation ``"box"``
            (the tight box, filled) and ``"mask"`` (the object's mask eroded by a pixel).
        mask: ``[H, W]`` bool object mask, not empty.
        rng: random generator.
        radius: half side of a click's square.

    Raises:
        ValueError: on an unknown kind or an empty mask.
    """
    h, w = mask.shape
    if kind == "point":
        out = np.zeros_like(mask)
        for _ in range(int(rng.integers(1, 4))):
            x, y = sample_point(mask, rng)
            out |= click_region(x, y, (h, w), radius=radius).numpy()
        return out
    if kind == "polygon":
        return sample_polygon(mask, rng)[1]
    if kind == "scribble":
        return sample_scribble(mask, rng, width=(1.5, 3.0))[1]
    if kind == "circle":
        return sample_scribble(mask, rng, num_points=(1, 3), width=(4.0, 8.0))[1]
    if kind == "box":
        ys, xs = np.nonzero(mask)
        out = np.zeros_like(mask)
        out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
        return out
    if kind == "mask":
        from scipy import ndimage

        eroded = ndimage.binary_erosion(mask)
        return eroded if eroded.any() else mask.copy()
    raise ValueError(f"kind: expected one of {(*SAMPLER_TYPES, 'box', 'mask')}, got {kind!r}")


@dataclass
class ImagePrompts:
    """One image's training prompts: regions, texts, the masks they ask for, which take clicks.

    Attributes:
        regions: ``[N, H, W]`` positive/negative regions (empty for text-only prompts).
        texts: N texts or None.
        targets: ``[N, H, W]`` bool masks asked for.
        clickable: N flags, True for prompts with a visual part (they receive simulated clicks).
        clicks: ``[N, H, W]`` bool, the pixels of ``regions`` that are clicks (point prompts and the
            click of a composition), or None.
    """

    regions: ObjectRegions
    texts: list[str | None]
    targets: NDArray[np.bool_]
    clickable: list[bool]
    clicks: NDArray[np.bool_] | None = None


def image_prompts(
    sample: ShapesSample,
    rng: np.random.Generator,
    *,
    max_objects: int = 4,
    max_referring: int = 2,
    composition_rate: float = 0.3,
) -> ImagePrompts:
    """Draw one image's prompts (see the module docstring).

    Args:
        sample: a shapes-world sample.
        rng: random generator.
        max_objects: segments with a visual prompt.
        max_referring: referring expressions as text prompts.
        composition_rate: probability that a text prompt also gets a click.
    """
    h, w = sample.size
    masks: list[NDArray[np.bool_]] = []
    regions: list[NDArray[np.bool_]] = []
    clicks: list[NDArray[np.bool_]] = []
    texts: list[str | None] = []
    clickable: list[bool] = []
    segments = list(sample.segments)
    order = rng.permutation(len(segments))[:max_objects]
    for i in order:
        mask = sample.mask(segments[int(i)].id)
        kind = SAMPLER_TYPES[int(rng.integers(len(SAMPLER_TYPES)))]
        masks.append(mask)
        regions.append(draw_visual_prompt(kind, mask, rng))
        clicks.append(regions[-1] if kind == "point" else np.zeros((h, w), bool))
        texts.append(None)
        clickable.append(True)
    referring = list(sample.referring)
    for j in rng.permutation(len(referring))[:max_referring]:
        expr = referring[int(j)]
        mask = sample.mask(expr.target_id)
        composed = rng.random() < composition_rate
        if composed:
            x, y = sample_point(mask, rng, mode="center")
            regions.append(click_region(x, y, (h, w)).numpy())
        else:
            regions.append(np.zeros((h, w), bool))
        clicks.append(regions[-1])
        masks.append(mask)
        texts.append(expr.text)
        clickable.append(composed)
    positive = torch.from_numpy(np.stack(regions)) if regions else torch.zeros(0, h, w, dtype=torch.bool)
    return ImagePrompts(
        regions=ObjectRegions(positive=positive, negative=torch.zeros_like(positive)),
        texts=texts,
        targets=np.stack(masks) if masks else np.zeros((0, h, w), bool),
        clickable=clickable,
        clicks=np.stack(clicks) if clicks else np.zeros((0, h, w), bool),
    )


def collate_prompts(
    prompts: Sequence[ImagePrompts], size: tuple[int, int]
) -> tuple[PromptBatch, list[Targets], torch.Tensor]:
    """A batch's prompts, their targets and which take clicks.

    Args:
        prompts: per image, :func:`image_prompts`' result.
        size: ``(H, W)`` of the images.

    Returns:
        ``(PromptBatch, per-image Targets (labels 0), clickable [B, P] bool)``.
    """
    batch = PromptBatch.from_objects(
        [p.regions for p in prompts],
        [p.texts for p in prompts],
        size,
        clicks=[None if p.clicks is None else torch.from_numpy(p.clicks) for p in prompts],
    )
    targets = [
        Targets(masks=torch.from_numpy(p.targets), labels=torch.zeros(len(p.texts), dtype=torch.int64))
        for p in prompts
    ]
    clickable = torch.zeros_like(batch.valid)
    for i, p in enumerate(prompts):
        clickable[i, : len(p.clickable)] = torch.tensor(p.clickable, dtype=torch.bool)
    return batch, targets, clickable
