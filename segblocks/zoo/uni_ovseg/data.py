"""Uni-OVSeg's unpaired training data in the shapes world: image-mask pairs and image-text pairs.

* Stage 1, **image-mask pairs without labels** (the SA-1B role): an image with every mask it has --
  each thing, each thing's part, each stuff region -- and no class names, no caption.
* Stage 2, **image-text pairs without masks** (the web-caption role): *other* images with only a
  caption; the noisy caption (missing and hallucinated objects) plays the raw web text, the clean
  caption the LVLM-refined text. Entities come from the caption by
  :func:`~segblocks.data.shapes.entities.parse_entities`.

The two stages draw from disjoint index ranges of the world's train split, and the datasets record
every index they served: :func:`check_unpaired` fails when any image was served with both masks and a
text, so "no training image carries both" is a checked property of the pipeline, not a promise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from segblocks.data.shapes.config import ShapesWorldConfig
from segblocks.data.shapes.entities import parse_entities
from segblocks.data.shapes.sample import ShapesSample
from segblocks.data.shapes.world import ShapesWorld
from segblocks.structures import Batch, Prompts, Targets

__all__ = [
    "CAPTIONS",
    "ImageMaskDataset",
    "ImageMaskPair",
    "ImageTextDataset",
    "ImageTextPair",
    "check_unpaired",
    "collate_image_mask",
    "collate_image_text",
    "mask_targets",
    "stage1_prompts",
]

logger = logging.getLogger(__name__)

#: Which caption stage 2 reads: ``"noisy"`` (web text) or ``"clean"`` (LVLM-refined text).
CAPTIONS = ("noisy", "clean")


def mask_targets(sample: ShapesSample) -> Targets:
    """Every mask of an image, class-agnostic: things, their parts, stuff regions (labels all 0).

    Args:
        sample: a shapes-world sample.

    Returns:
        :class:`~segblocks.structures.Targets` with ``N`` masks (``N`` may be 0 for an empty image).
    """
    panoptic = sample.to_targets()
    parts = torch.from_numpy(np.asarray(sample.part_masks, dtype=bool)).reshape(-1, *sample.size)
    parts = parts[parts.flatten(1).any(1)]
    masks = torch.cat([panoptic.masks, parts])
    return Targets(masks=masks, labels=torch.zeros(len(masks), dtype=torch.int64))


@dataclass
class ImageMaskPair:
    """A stage-1 example: an image and its masks, no text.

    Attributes:
        image: ``[3, H, W]`` in ``[0, 1]``.
        targets: every mask of the image (see :func:`mask_targets`).
        index: the world index it was drawn from.
    """

    image: Tensor
    targets: Targets
    index: int


@dataclass
class ImageTextPair:
    """A stage-2 example: an image and its caption's entities, no masks.

    Attributes:
        image: ``[3, H, W]`` in ``[0, 1]``.
        caption: the caption text.
        entities: entity names parsed from the caption (possibly empty).
        index: the world index it was drawn from.
    """

    image: Tensor
    caption: str
    entities: list[str]
    index: int


class _Served:
    """Indices a dataset handed out (for :func:`check_unpaired`)."""

    def __init__(self) -> None:
        self.served: set[int] = set()


class ImageMaskDataset(Dataset[ImageMaskPair], _Served):
    """Stage-1 images ``start .. start + length - 1`` of the world's train split, with masks only.

    Args:
        world: the world's configuration.
        start: first world index.
        length: number of images.
    """

    def __init__(self, world: ShapesWorldConfig, *, start: int, length: int) -> None:
        _Served.__init__(self)
        if start < 0 or length < 1:
            raise ValueError(f"start, length: expected start >= 0 and length >= 1, got {start}, {length}")
        self.world = ShapesWorld(world, split="train")
        self.start, self.length = start, length

    @property
    def indices(self) -> range:
        """The world indices this dataset may serve."""
        return range(self.start, self.start + self.length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> ImageMaskPair:
        index = self.start + int(i)
        self.served.add(index)
        sample = self.world.sample(index)
        return ImageMaskPair(image=sample.image_tensor(), targets=mask_targets(sample), index=index)


class ImageTextDataset(Dataset[ImageTextPair], _Served):
    """Stage-2 images of the world's train split with their caption only.

    Args:
        world: the world's configuration.
        start: first world index.
        length: number of images.
        caption: ``"noisy"`` (web text) or ``"clean"`` (refined text).
    """

    def __init__(self, world: ShapesWorldConfig, *, start: int, length: int, caption: str = "noisy") -> None:
        _Served.__init__(self)
        if start < 0 or length < 1:
            raise ValueError(f"start, length: expected start >= 0 and length >= 1, got {start}, {length}")
        if caption not in CAPTIONS:
            raise ValueError(f"caption: expected one of {CAPTIONS}, got {caption!r}")
        self.world = ShapesWorld(world, split="train")
        self.start, self.length, self.caption = start, length, caption

    @property
    def indices(self) -> range:
        """The world indices this dataset may serve."""
        return range(self.start, self.start + self.length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> ImageTextPair:
        index = self.start + int(i)
        self.served.add(index)
        sample = self.world.sample(index)
        text = sample.noisy_caption if self.caption == "noisy" else sample.caption
        return ImageTextPair(
            image=sample.image_tensor(), caption=text, entities=parse_entities(text), index=index
        )


def check_unpaired(masks: ImageMaskDataset, texts: ImageTextDataset) -> None:
    """Fail if any training image could be, or was, seen with both its masks and its text.

    Checks that the two datasets draw from the same world (same seed and size) through disjoint
    index ranges, and that no index was actually served by both.

    Args:
        masks: the stage-1 dataset (image-mask pairs).
        texts: the stage-2 dataset (image-text pairs).

    Raises:
        ValueError: on overlapping ranges or an image served by both datasets.
    """
    if masks.world.config != texts.world.config:
        raise ValueError("masks, texts: the two stages must draw from the same world configuration")
    overlap = set(masks.indices) & set(texts.indices)
    if overlap:
        raise ValueError(
            f"masks, texts: {len(overlap)} training images would carry both masks and texts "
            f"(e.g. index {min(overlap)}); give the stages disjoint index ranges"
        )
    served = masks.served & texts.served
    if served:
        raise ValueError(f"masks, texts: images {sorted(served)[:5]} were served with both masks and texts")


def stage1_prompts(
    targets: Targets, rng: np.random.Generator, *, num_points: int, num_boxes: int
) -> tuple[Prompts, Tensor, Tensor]:
    """Point and box prompts of one image-mask pair, and which masks may answer each.

    Half the points (rounded up) fall inside a random mask other than the largest (so small things
    and parts are asked about), the rest uniformly over the image; each box is the box of a random mask.

    Args:
        targets: the image's masks ``[N, H, W]`` (``N >= 1``).
        rng: random generator.
        num_points: point prompts.
        num_boxes: box prompts.

    Returns:
        ``(prompts, point_eligible [P, N], box_eligible [P, N])`` with ``P = num_points + num_boxes``
        (points first): a point's eligible masks are those containing it, a box's its own mask.

    Raises:
        ValueError: on an image without masks or no prompts asked.
    """
    masks = targets.masks
    n = len(masks)
    if n == 0:
        raise ValueError("targets: a stage-1 image needs at least one mask (skip images without masks)")
    if num_points + num_boxes < 1 or min(num_points, num_boxes) < 0:
        raise ValueError(
            f"num_points, num_boxes: expected >= 0 with a positive sum, got {num_points}, {num_boxes}"
        )
    h, w = masks.shape[-2:]
    areas = masks.flatten(1).sum(1).numpy()
    small = np.flatnonzero(areas < areas.max()) if n > 1 else np.arange(n)
    xy = []
    for p in range(num_points):
        if p < (num_points + 1) // 2 and small.size:
            ys, xs = np.nonzero(masks[int(rng.choice(small))].numpy())
            j = int(rng.integers(len(ys)))
            xy.append((xs[j] + 0.5, ys[j] + 0.5))
        else:
            xy.append((rng.uniform(0, w), rng.uniform(0, h)))
    box_ids = rng.integers(0, n, size=num_boxes)
    boxes = []
    for j in box_ids:
        ys, xs = np.nonzero(masks[int(j)].numpy())
        boxes.append((xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0))
    total = num_points + num_boxes
    point_eligible = torch.zeros(total, n, dtype=torch.bool)
    box_eligible = torch.zeros(total, n, dtype=torch.bool)
    for p, (x, y) in enumerate(xy):
        point_eligible[p] = masks[:, min(int(y), h - 1), min(int(x), w - 1)]
    for b, j in enumerate(box_ids):
        box_eligible[num_points + b, int(j)] = True
    prompts = Prompts(
        points=torch.tensor(xy, dtype=torch.float32).reshape(-1, 1, 2) if num_points else None,
        point_labels=torch.ones(num_points, 1, dtype=torch.int64) if num_points else None,
        boxes=torch.tensor(boxes, dtype=torch.float32) if num_boxes else None,
    )
    return prompts, point_eligible, box_eligible


def collate_image_mask(
    examples: Sequence[ImageMaskPair], *, num_points: int, num_boxes: int, seed: int = 0
) -> Batch:
    """A stage-1 :class:`~segblocks.structures.Batch`: images, masks, prompts, eligibility.

    Images without any mask are skipped (and logged); the prompts of an image are a pure function
    of ``(seed, index)``.

    Args:
        examples: stage-1 examples.
        num_points: point prompts an image.
        num_boxes: box prompts an image.
        seed: seed of the prompt sampling.

    Raises:
        ValueError: when no image of the batch has a mask.
    """
    kept = [e for e in examples if len(e.targets) > 0]
    if len(kept) < len(examples):
        logger.warning("stage 1: skipped %d image(s) without masks", len(examples) - len(kept))
    if not kept:
        raise ValueError("examples: no image of the batch has a mask")
    prompts, points, boxes = [], [], []
    for e in kept:
        rng = np.random.default_rng([seed, e.index])
        p, pe, be = stage1_prompts(e.targets, rng, num_points=num_points, num_boxes=num_boxes)
        prompts.append(p)
        points.append(pe)
        boxes.append(be)
    return Batch(
        images=torch.stack([e.image for e in kept]),
        targets=[e.targets for e in kept],
        prompts=list(prompts),
        extras={"point_eligible": points, "box_eligible": boxes, "indices": [e.index for e in kept]},
    )


def collate_image_text(examples: Sequence[ImageTextPair]) -> Batch:
    """A stage-2 :class:`~segblocks.structures.Batch`: images, ``extras["entities"]`` and captions, no targets.

    Args:
        examples: stage-2 examples.
    """
    return Batch(
        images=torch.stack([e.image for e in examples]),
        extras={
            "entities": [e.entities for e in examples],
            "captions": [e.caption for e in examples],
            "indices": [e.index for e in examples],
        },
    )
