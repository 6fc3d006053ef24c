"""``torch.utils.data`` datasets over the shapes world, and their collate functions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from segblocks.data.shapes.config import ShapesWorldConfig
from segblocks.data.shapes.sample import ShapesClip, ShapesSample
from segblocks.data.shapes.world import ShapesWorld
from segblocks.data.tubes import tubes_from_frames
from segblocks.structures import Batch, Targets

__all__ = [
    "ShapesBatch",
    "ShapesClipDataset",
    "ShapesClipExample",
    "ShapesDataset",
    "ShapesExample",
    "collate_batch",
    "collate_clip_batch",
    "collate_clips",
    "collate_shapes",
]


@dataclass
class ShapesExample:
    """One image as training code consumes it.

    Attributes:
        image: ``[3, H, W]`` float32 in ``[0, 1]``.
        targets: panoptic ground truth (things and stuff) as :class:`~segblocks.structures.Targets`.
        semantic: ``[H, W]`` int64 category ids.
        sample: the full :class:`ShapesSample` (captions, parts, referring expressions, ...).
    """

    image: Tensor
    targets: Targets
    semantic: Tensor
    sample: ShapesSample


@dataclass
class ShapesBatch:
    """A collated batch: ``images [B, 3, H, W]``, ``semantic [B, H, W]``, per-image targets/samples."""

    images: Tensor
    targets: list[Targets]
    semantic: Tensor
    samples: list[ShapesSample]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _example(sample: ShapesSample) -> ShapesExample:
    return ShapesExample(
        image=sample.image_tensor(),
        targets=sample.to_targets(),
        semantic=torch.from_numpy(sample.semantic),
        sample=sample,
    )


class ShapesDataset(Dataset[ShapesExample]):
    """A fixed-length dataset of shapes-world images (generated on the fly, deterministic per index).

    Args:
        config: the world's configuration (default: 128x128 images).
        split: ``"train"``, ``"val"`` or ``"test"``.
        length: number of images (> 0).
    """

    def __init__(
        self, config: ShapesWorldConfig | None = None, *, split: str = "train", length: int = 1000
    ) -> None:
        if length <= 0:
            raise ValueError(f"length: expected a positive number of images, got {length}")
        self.world = ShapesWorld(config, split=split)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> ShapesExample:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} images")
        return _example(self.world.sample(index))


def collate_shapes(batch: list[ShapesExample]) -> ShapesBatch:
    """Stack images and semantic maps (all images must have the same size); keep targets as a list.

    Args:
        batch: examples from :class:`ShapesDataset`.
    """
    if not batch:
        raise ValueError("batch: expected at least one example")
    sizes = {tuple(e.image.shape) for e in batch}
    if len(sizes) != 1:
        raise ValueError(f"batch: images must share one size to be stacked, got sizes {sorted(sizes)}")
    return ShapesBatch(
        images=torch.stack([e.image for e in batch]),
        targets=[e.targets for e in batch],
        semantic=torch.stack([e.semantic for e in batch]),
        samples=[e.sample for e in batch],
    )


def collate_batch(batch: list[ShapesExample]) -> Batch:
    """Collate examples into a :class:`~segblocks.structures.Batch` (what a ``training_step`` takes).

    ``extras`` keeps ``"semantic"`` (``[B, H, W]`` category ids) and ``"samples"`` (the
    :class:`ShapesSample` of each image, for prompts, captions or other targets).

    Args:
        batch: examples from :class:`ShapesDataset` (all of one image size).

    Raises:
        ValueError: on an empty batch or images of different sizes.
    """
    shapes = collate_shapes(batch)
    return Batch(
        images=shapes.images,
        targets=shapes.targets,
        extras={"semantic": shapes.semantic, "samples": shapes.samples},
    )


@dataclass
class ShapesClipExample:
    """One clip: ``frames [T, 3, H, W]`` float32, per-frame targets (ids are track ids), the clip."""

    frames: Tensor
    targets: list[Targets]
    clip: ShapesClip


class ShapesClipDataset(Dataset[ShapesClipExample]):
    """A fixed-length dataset of shapes-world video clips.

    Args:
        config: the world's configuration (default: 128x128 images).
        split: ``"train"``, ``"val"`` or ``"test"``.
        length: number of clips (> 0).
        num_frames: frames per clip (> 0).
    """

    def __init__(
        self,
        config: ShapesWorldConfig | None = None,
        *,
        split: str = "train",
        length: int = 100,
        num_frames: int = 8,
    ) -> None:
        if length <= 0:
            raise ValueError(f"length: expected a positive number of clips, got {length}")
        if num_frames <= 0:
            raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
        self.world = ShapesWorld(config, split=split)
        self.length = length
        self.num_frames = num_frames

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> ShapesClipExample:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} clips")
        clip = self.world.sample_clip(index, num_frames=self.num_frames)
        return ShapesClipExample(
            frames=torch.stack([f.image_tensor() for f in clip.frames]),
            targets=[f.to_targets() for f in clip.frames],
            clip=clip,
        )


def collate_clips(batch: list[ShapesClipExample]) -> list[ShapesClipExample]:
    """Keep clips as a list (their numbers of segments differ per frame).

    Args:
        batch: examples from :class:`ShapesClipDataset`.
    """
    if not batch:
        raise ValueError("batch: expected at least one clip")
    return list(batch)


def collate_clip_batch(batch: list[ShapesClipExample]) -> Batch:
    """Collate clips into a :class:`~segblocks.structures.Batch` of ``[B, T, 3, H, W]`` with tube targets.

    Each clip's per-frame targets become one :class:`~segblocks.structures.Targets` of mask tubes
    ``[N, T, H, W]`` (one per track, empty where it is absent; stuff regions are tracks too).
    ``extras`` keeps ``"semantic"`` (``[B, T, H, W]`` category ids, 255 where no segment) and
    ``"clips"`` (the :class:`ShapesClip` of each example).

    Args:
        batch: examples from :class:`ShapesClipDataset` (all of one length and frame size).

    Raises:
        ValueError: on an empty batch or clips of different lengths or sizes.
    """
    if not batch:
        raise ValueError("batch: expected at least one clip")
    shapes = {tuple(e.frames.shape) for e in batch}
    if len(shapes) != 1:
        raise ValueError(
            f"batch: clips of different lengths or sizes {sorted(shapes)}; collate one size at a time"
        )
    tubes = [tubes_from_frames(e.targets) for e in batch]
    semantic = torch.stack([_semantic_of(t) for t in tubes])
    return Batch(
        images=torch.stack([e.frames for e in batch]),
        targets=tubes,
        extras={"semantic": semantic, "clips": [e.clip for e in batch]},
    )


def _semantic_of(tubes: Targets) -> Tensor:
    """``[T, H, W]`` category ids of a clip's tubes, 255 where no tube covers a pixel."""
    t, h, w = tubes.masks.shape[1:]
    out = torch.full((t, h, w), 255, dtype=torch.int64)
    for mask, label in zip(tubes.masks, tubes.labels.tolist()):
        out[mask] = label
    return out
