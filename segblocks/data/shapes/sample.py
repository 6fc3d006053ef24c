"""What the shapes world produces: a sample (one image with every annotation) and a clip."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray

from segblocks.structures import Targets

__all__ = ["ReferringExpression", "Segment", "ShapesClip", "ShapesSample"]


@dataclass(frozen=True)
class Segment:
    """One panoptic segment (a thing instance or a stuff region) and its attributes.

    Attributes:
        id: segment id in the panoptic map (``> 0``); for things also the instance/track id.
        category_id: contiguous category id (see :data:`CATEGORIES`).
        is_thing: True for things, False for stuff.
        bbox: ``(x1, y1, x2, y2)`` of the visible pixels, pixel edges (``x2 = last column + 1``).
        area: number of visible pixels.
        iscrowd: always False in the shapes world; kept for the COCO formats.
        colour: colour name of a thing, None for stuff.
        centroid: ``(x, y)`` mean of the visible pixel centres.
        radius: radius of the thing's circumscribed disc in pixels (0 for stuff).
    """

    id: int
    category_id: int
    is_thing: bool
    bbox: tuple[float, float, float, float]
    area: int
    iscrowd: bool = False
    colour: str | None = None
    centroid: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0


@dataclass(frozen=True)
class ReferringExpression:
    """A phrase that identifies exactly one thing, kept in structured form so it can be resolved.

    Attributes:
        text: the phrase, e.g. ``"the leftmost red star"``.
        target_id: segment id of the object it refers to.
        shape: the thing class name.
        colour: colour name, or None when the shape alone is unique.
        relation: one of ``largest, smallest, leftmost, rightmost, topmost, bottommost`` or None.
    """

    text: str
    target_id: int
    shape: str
    colour: str | None = None
    relation: str | None = None


@dataclass
class ShapesSample:
    """One shapes-world image with all its annotations (numpy, ``H x W``).

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB.
        panoptic: ``[H, W]`` int32 segment ids (``0`` would be VOID; the shapes world has none).
        segments: one :class:`Segment` per id in ``panoptic``, things first (depth order, bottom
            to top), then stuff.
        semantic: ``[H, W]`` int64 category ids.
        part_masks: ``[N_things, H, W]`` bool visible part of each thing, in the order of
            :attr:`thing_segments`; each part lies inside its thing's mask.
        caption: clean caption naming every visible entity with its attributes.
        noisy_caption: the caption with missing and hallucinated entities (web alt-text style).
        caption_entities: class names the clean caption mentions.
        noisy_entities: class names the noisy caption mentions.
        referring: referring expressions, each identifying exactly one thing.
    """

    image: NDArray[np.uint8]
    panoptic: NDArray[np.int32]
    segments: list[Segment]
    semantic: NDArray[np.int64]
    part_masks: NDArray[np.bool_]
    caption: str = ""
    noisy_caption: str = ""
    caption_entities: list[str] = field(default_factory=list)
    noisy_entities: list[str] = field(default_factory=list)
    referring: list[ReferringExpression] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.panoptic.shape[0]), int(self.panoptic.shape[1])

    @property
    def thing_segments(self) -> list[Segment]:
        """The thing segments, bottom to top."""
        return [s for s in self.segments if s.is_thing]

    def mask(self, segment_id: int) -> NDArray[np.bool_]:
        """``[H, W]`` bool mask of one segment.

        Args:
            segment_id: an id of :attr:`segments`; ``ValueError`` otherwise.
        """
        if all(s.id != segment_id for s in self.segments):
            raise ValueError(f"segment_id: {segment_id} is not a segment of this sample")
        return self.panoptic == segment_id

    @property
    def instance_masks(self) -> NDArray[np.bool_]:
        """``[N_things, H, W]`` bool visible masks of the things, bottom to top."""
        ids = np.array([s.id for s in self.thing_segments], dtype=np.int32)
        return self.panoptic[None] == ids[:, None, None]

    @property
    def instance_labels(self) -> NDArray[np.int64]:
        """``[N_things]`` category ids of the things."""
        return np.array([s.category_id for s in self.thing_segments], dtype=np.int64)

    @property
    def instance_ids(self) -> NDArray[np.int64]:
        """``[N_things]`` segment (instance/track) ids of the things."""
        return np.array([s.id for s in self.thing_segments], dtype=np.int64)

    @property
    def boxes(self) -> NDArray[np.float32]:
        """``[N_things, 4]`` float32 ``(x1, y1, x2, y2)`` boxes of the things."""
        return np.array([s.bbox for s in self.thing_segments], dtype=np.float32).reshape(-1, 4)

    def image_tensor(self) -> torch.Tensor:
        """``[3, H, W]`` float32 image in ``[0, 1]``."""
        return torch.from_numpy(self.image).permute(2, 0, 1).float().div_(255.0)

    def to_targets(self, *, include_stuff: bool = True, categories: frozenset[int] | None = None) -> Targets:
        """Ground truth as :class:`~segblocks.structures.Targets` (torch).

        Args:
            include_stuff: also return the stuff regions (panoptic training) or only things.
            categories: keep only segments of these category ids (e.g. the *seen* classes); the
                pixels of dropped segments simply belong to no target.
        """
        keep = [
            s
            for s in self.segments
            if (include_stuff or s.is_thing) and (categories is None or s.category_id in categories)
        ]
        ids = np.array([s.id for s in keep], dtype=np.int32)
        masks = self.panoptic[None] == ids[:, None, None]
        return Targets(
            masks=torch.from_numpy(masks),
            labels=torch.tensor([s.category_id for s in keep], dtype=torch.int64),
            instance_ids=torch.tensor([s.id for s in keep], dtype=torch.int64),
            is_thing=torch.tensor([s.is_thing for s in keep], dtype=torch.bool),
        )


@dataclass
class ShapesClip:
    """A video clip: frames whose thing segment ids are track ids, consistent across frames.

    A thing that is out of view or fully occluded in a frame is absent from that frame's segments;
    stuff regions keep their ids for the whole clip.
    """

    frames: list[ShapesSample]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def track_ids(self) -> list[int]:
        """Sorted ids of every thing visible in at least one frame."""
        return sorted({s.id for f in self.frames for s in f.thing_segments})
