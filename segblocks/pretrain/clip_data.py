"""Image/text pairs for the tiny CLIP: whole images with captions, object crops, stuff crops, masks.

Every shapes-world image gives four kinds of supervision (see ``zoo/shapes-clip-tiny/README.md``):

- the whole image and its clean caption (an image/caption pair);
- one crop per thing, around its box, with a phrase such as ``"a photo of a small red star."``;
- one crop per stuff region, a square inside the region;
- the ground-truth segment masks, to pool the dense CLIP map (region/class pairs).

Crops are cut and resized with ``torchvision.ops.roi_align`` (bilinear, zero outside the image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor
from torchvision.ops import roi_align

from segblocks.backbones.text_prompts import DEFAULT_TEMPLATES
from segblocks.data.shapes import CATEGORIES, ShapesSample, ShapesWorld
from segblocks.data.shapes.language import size_word

__all__ = [
    "ClipBatch",
    "Phrase",
    "crop_images",
    "make_clip_batch",
    "stuff_crop_box",
    "thing_crop_box",
    "thing_phrase",
]

#: Templates of the training texts: segblocks' prompt ensemble plus the bare phrase.
TRAIN_TEMPLATES: tuple[str, ...] = (*DEFAULT_TEMPLATES, "{}.")
_MIN_STUFF_HALF = 6.0


class Phrase(NamedTuple):
    """What one text says about one object: its class name and the attributes it mentions."""

    #: The class name (``"star"``, ``"sand"``).
    name: str
    #: The colour the text mentions, or None when it mentions none.
    colour: str | None = None
    #: The size word the text mentions (``"small"``, ``"large"``), or None.
    size: str | None = None

    @property
    def words(self) -> str:
        """The noun phrase, e.g. ``"small red star"``."""
        return " ".join(w for w in (self.size, self.colour, self.name) if w)


@dataclass
class ClipBatch:
    """One training batch (``B`` images, ``N`` crops, ``S`` segments at most per image).

    Attributes:
        images: ``[B, 3, H, W]`` float images in ``[0, 1]``.
        captions: ``B`` clean captions.
        masks: ``[B, S, H, W]`` bool segment masks, padded with empty masks.
        mask_labels: ``[B, S]`` int64 category ids, ``-1`` for padding.
        crops: ``[N, 3, c, c]`` thing crops first (``views`` jittered views of every thing: the first
            view of each thing, then the second, ...), then stuff crops.
        crop_labels: ``[N]`` int64 category ids.
        thing_texts: one phrase per thing, for its first view (the first ``len(thing_texts)`` crops).
        stuff_texts: one phrase per stuff crop (the last ``len(stuff_texts)`` crops), e.g.
            ``"a photo of sand."``.
        thing_phrases: what each of ``thing_texts`` says (the same order).
        stuff_phrases: what each of ``stuff_texts`` says.
        mask_phrases: one :class:`Phrase` per real segment of ``masks`` (in the order of
            ``mask_labels[mask_labels >= 0]``): a thing's is the phrase of its crop text, a stuff
            region's is its name.
    """

    images: Tensor
    captions: list[str]
    masks: Tensor
    mask_labels: Tensor
    crops: Tensor
    crop_labels: Tensor
    thing_texts: list[str]
    stuff_texts: list[str] = field(default_factory=list)
    thing_phrases: list[Phrase] = field(default_factory=list)
    stuff_phrases: list[Phrase] = field(default_factory=list)
    mask_phrases: list[Phrase] = field(default_factory=list)


def thing_phrase(name: str, colour: str | None, size: str, rng: np.random.Generator) -> Phrase:
    """A phrase for a thing with each attribute kept with probability 1/2 (``"small red star"``).

    Args:
        name: the class name.
        colour: its colour name, or None.
        size: its size word (``"small"``, ``"large"`` or ``""``).
        rng: random generator.

    Returns:
        The :class:`Phrase` (its ``words`` are the text).
    """
    kept_size = size if size and rng.random() < 0.5 else None
    kept_colour = colour if colour and rng.random() < 0.5 else None
    return Phrase(name, kept_colour, kept_size)


def thing_crop_box(
    bbox: Sequence[float], rng: np.random.Generator | None = None, *, context: float = 1.3
) -> tuple[float, float, float, float]:
    """A square box around a thing's box: side ``context`` x its longer side, jittered when training.

    Args:
        bbox: ``(x1, y1, x2, y2)`` of the thing.
        rng: random generator for training jitter (scale 1.1-1.6, centre +-10 % of the side);
            None gives the deterministic evaluation box.
        context: side over the longer box side without ``rng``.

    Returns:
        ``(x1, y1, x2, y2)``, possibly reaching outside the image (zero-filled when cropped).
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1, 2.0)
    if rng is None:
        side *= context
    else:
        side *= float(rng.uniform(1.1, 1.6))
        cx += float(rng.uniform(-0.1, 0.1)) * side
        cy += float(rng.uniform(-0.1, 0.1)) * side
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def stuff_crop_box(
    mask: np.ndarray, rng: np.random.Generator | None = None
) -> tuple[float, float, float, float] | None:
    """A square inside a stuff region: centred where the region is thickest (random when training).

    Args:
        mask: ``[H, W]`` bool mask of the region (things excluded).
        rng: random generator: centre among the pixels at >= 70 % of the largest distance to the
            region's border, half-side 0.7-1.2 x that distance; None: the deepest pixel, half-side
            equal to its distance.

    Returns:
        ``(x1, y1, x2, y2)``, or None when the region is thinner than 6 pixels everywhere.
    """
    # Distance from a pixel centre to the nearest outside pixel centre, less half a pixel: the
    # distance to the region's edge.
    dist = ndimage.distance_transform_edt(mask) - 0.5
    deepest = float(dist.max())
    if deepest < _MIN_STUFF_HALF:
        return None
    if rng is None:
        y, x = np.unravel_index(int(dist.argmax()), dist.shape)
        half = deepest
    else:
        ys, xs = np.nonzero(dist >= 0.7 * deepest)
        k = int(rng.integers(len(ys)))
        y, x = ys[k], xs[k]
        half = max(_MIN_STUFF_HALF, float(dist[y, x]) * float(rng.uniform(0.7, 1.2)))
    return x + 0.5 - half, y + 0.5 - half, x + 0.5 + half, y + 0.5 + half


def crop_images(images: Tensor, boxes: Sequence[Sequence[tuple[float, ...]]], size: int) -> Tensor:
    """Cut ``size`` x ``size`` crops out of a batch of images.

    Args:
        images: ``[B, 3, H, W]``.
        boxes: per image, a list of ``(x1, y1, x2, y2)`` boxes in pixels.
        size: output side.

    Returns:
        ``[sum of boxes, 3, size, size]`` in the order of ``boxes``.

    Raises:
        ValueError: when ``boxes`` does not have one list per image or ``size`` < 1.
    """
    if len(boxes) != images.shape[0]:
        raise ValueError(f"boxes: expected one list per image ({images.shape[0]}), got {len(boxes)}")
    if size < 1:
        raise ValueError(f"size: expected a positive int, got {size}")
    rois = [torch.tensor(b, dtype=images.dtype).reshape(-1, 4) for b in boxes]
    if sum(len(r) for r in rois) == 0:
        return images.new_zeros(0, images.shape[1], size, size)
    return roi_align(images, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def _segment_masks(samples: Sequence[ShapesSample]) -> tuple[Tensor, Tensor]:
    """``[B, S, H, W]`` padded segment masks and ``[B, S]`` labels (``-1`` for padding)."""
    most = max(len(s.segments) for s in samples)
    h, w = samples[0].size
    masks = torch.zeros(len(samples), most, h, w, dtype=torch.bool)
    labels = torch.full((len(samples), most), -1, dtype=torch.int64)
    for b, s in enumerate(samples):
        t = s.to_targets()
        masks[b, : len(t.labels)] = t.masks
        labels[b, : len(t.labels)] = t.labels
    return masks, labels


def make_clip_batch(
    world: ShapesWorld,
    indices: Sequence[int],
    rng: np.random.Generator,
    *,
    crop_size: int = 64,
    views: int = 1,
    full_images: int | None = None,
) -> ClipBatch:
    """Draw the samples ``indices`` of ``world`` and cut the training pairs out of them.

    Args:
        world: the shapes world (usually the train split).
        indices: sample indices, one image each.
        rng: random generator for crops and phrases.
        crop_size: side of the crops in pixels.
        views: jittered crops per thing (more labelled crops per image drawn, at little cost).
        full_images: keep the whole image, caption and masks of only the first ``full_images``
            samples (None: all); crops come from every sample. Crops are cheap and whole images
            are not, so a batch can carry many more crops than whole images.

    Returns:
        The :class:`ClipBatch` (``B = full_images`` whole images).

    Raises:
        ValueError: on an empty ``indices``, ``views`` < 1 or ``full_images`` outside
            ``[1, len(indices)]``.
    """
    if len(indices) == 0:
        raise ValueError("indices: expected at least one sample index")
    if views < 1:
        raise ValueError(f"views: expected a positive int, got {views}")
    full = len(indices) if full_images is None else full_images
    if not 1 <= full <= len(indices):
        raise ValueError(f"full_images: expected an int in [1, {len(indices)}], got {full_images}")
    samples = [world.sample(int(i)) for i in indices]
    images = torch.stack([s.image_tensor() for s in samples])
    masks, labels = _segment_masks(samples[:full])
    thing_boxes: list[list[tuple[float, ...]]] = []
    stuff_boxes: list[list[tuple[float, ...]]] = []
    thing_labels: list[int] = []
    stuff_labels: list[int] = []
    texts: list[str] = []
    stuff_texts: list[str] = []
    thing_phrases: list[Phrase] = []
    stuff_phrases: list[Phrase] = []
    mask_phrases: list[Phrase] = []
    for b, s in enumerate(samples):
        thing_boxes.append([])
        stuff_boxes.append([])
        for seg in s.segments:
            name = CATEGORIES[seg.category_id].name
            if seg.is_thing:
                thing_boxes[-1].append(thing_crop_box(seg.bbox, rng))
                thing_labels.append(seg.category_id)
                size = size_word(seg.radius, world.radius_range)
                template = TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))]
                phrase = thing_phrase(name, seg.colour, size, rng)
                thing_phrases.append(phrase)
                texts.append(template.format(phrase.words))
            else:
                phrase = Phrase(name)
                box = stuff_crop_box(s.mask(seg.id), rng)
                if box is not None:
                    stuff_boxes[-1].append(box)
                    stuff_labels.append(seg.category_id)
                    template = TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))]
                    stuff_phrases.append(phrase)
                    stuff_texts.append(template.format(name))
            if b < full:  # the segment's mask is in the batch (to_targets keeps the segment order)
                mask_phrases.append(phrase)
    thing_crops = [crop_images(images, thing_boxes, crop_size)]
    for _ in range(views - 1):  # further views: the same things, in the same order, jittered anew
        boxes = [[thing_crop_box(seg.bbox, rng) for seg in s.segments if seg.is_thing] for s in samples]
        thing_crops.append(crop_images(images, boxes, crop_size))
    crops = torch.cat([*thing_crops, crop_images(images, stuff_boxes, crop_size)])
    return ClipBatch(
        images=images[:full],
        captions=[s.caption for s in samples[:full]],
        masks=masks,
        mask_labels=labels,
        crops=crops,
        crop_labels=torch.tensor(thing_labels * views + stuff_labels, dtype=torch.int64),
        thing_texts=texts,
        stuff_texts=stuff_texts,
        thing_phrases=thing_phrases,
        stuff_phrases=stuff_phrases,
        mask_phrases=mask_phrases,
    )
