"""Adapters from the shapes world to the format records, and one-call export to every format.

The records built here are what the writers store and what the readers give back, so a
``export_shapes_world`` followed by the matching reader returns an equal :class:`RecordDataset`.
Annotation / track ids are ``1000 * image_id + segment_id`` so that they are unique per dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segblocks.data.formats.ade20k import write_ade20k
from segblocks.data.formats.coco_instances import write_coco_instances
from segblocks.data.formats.coco_panoptic import write_coco_panoptic
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.davis import write_davis
from segblocks.data.formats.records import (
    CategoryRecord,
    InstanceRecord,
    PanopticRecord,
    PanopticSegment,
    SemanticRecord,
    VideoInstanceRecord,
    VideoObjectRecord,
)
from segblocks.data.formats.youtube_vis import write_youtube_vis
from segblocks.data.shapes import CATEGORIES, ShapesClip, ShapesSample, ShapesWorld

__all__ = [
    "FORMATS",
    "export_shapes_world",
    "shapes_categories",
    "shapes_dataset",
    "to_instance_record",
    "to_panoptic_record",
    "to_semantic_record",
    "to_video_instance_record",
    "to_video_object_record",
]

_ID_STRIDE = 1000


def shapes_categories() -> list[CategoryRecord]:
    """The shapes world's categories as :class:`CategoryRecord` s."""
    return [CategoryRecord(c.id, c.name, c.is_thing) for c in CATEGORIES]


def _check_ids(ids: list[int]) -> None:
    if ids and max(ids) >= _ID_STRIDE:
        raise ValueError(
            f"segment ids must stay below {_ID_STRIDE} to build unique annotation ids, got {max(ids)}"
        )


def to_panoptic_record(sample: ShapesSample, image_id: int, file_name: str) -> PanopticRecord:
    """One shapes sample as a COCO-panoptic record.

    Args:
        sample: the shapes sample.
        image_id: the record's image id.
        file_name: the image file name.
    """
    return PanopticRecord(
        image_id=image_id,
        file_name=file_name,
        image=sample.image,
        panoptic=sample.panoptic.astype(np.int64),
        segments=[PanopticSegment(s.id, s.category_id, bool(s.iscrowd)) for s in sample.segments],
    )


def to_instance_record(sample: ShapesSample, image_id: int, file_name: str) -> InstanceRecord:
    """One shapes sample's things as a COCO-instances record.

    Args:
        sample: the shapes sample.
        image_id: the record's image id; annotation ids are ``1000 * image_id + segment id``.
        file_name: the image file name.
    """
    things = sample.thing_segments
    _check_ids([s.id for s in things])
    return InstanceRecord(
        image_id=image_id,
        file_name=file_name,
        image=sample.image,
        masks=sample.instance_masks,
        category_ids=sample.instance_labels,
        instance_ids=np.array([_ID_STRIDE * image_id + s.id for s in things], np.int64),
        iscrowd=np.array([bool(s.iscrowd) for s in things], bool),
        areas=np.array([float(s.area) for s in things], np.float64),
    )


def to_semantic_record(sample: ShapesSample, image_id: int, file_name: str) -> SemanticRecord:
    """One shapes sample as a semantic record.

    Args:
        sample: the shapes sample.
        image_id: the record's image id.
        file_name: the image file name.
    """
    return SemanticRecord(
        image_id=image_id, file_name=file_name, image=sample.image, label_map=sample.semantic
    )


def _tracks(clip: ShapesClip) -> tuple[list[int], list[int]]:
    cats: dict[int, int] = {}
    for frame in clip.frames:
        for s in frame.thing_segments:
            if cats.setdefault(s.id, s.category_id) != s.category_id:
                raise ValueError(f"clip: track {s.id} changes category")
    ids = sorted(cats)
    return ids, [cats[i] for i in ids]


def to_video_instance_record(clip: ShapesClip, video_id: int, folder: str) -> VideoInstanceRecord:
    """One clip's thing tracks as a YouTube-VIS record.

    Args:
        clip: the shapes clip.
        video_id: the record's video id; track ids are ``1000 * video_id + track id``.
        folder: the frames' folder, frames are named ``folder/00000.png``, ...
    """
    ids, cats = _tracks(clip)
    _check_ids(ids)
    pan = np.stack([f.panoptic for f in clip.frames])  # [T, H, W]
    masks = pan[None] == np.asarray(ids, np.int32)[:, None, None, None]
    return VideoInstanceRecord(
        video_id=video_id,
        file_names=[f"{folder}/{t:05d}.png" for t in range(len(clip))],
        frames=np.stack([f.image for f in clip.frames]),
        masks=masks,
        category_ids=np.asarray(cats, np.int64),
        track_ids=np.asarray([_ID_STRIDE * video_id + i for i in ids], np.int64),
        iscrowd=np.zeros(len(ids), bool),
    )


def to_video_object_record(clip: ShapesClip, name: str) -> VideoObjectRecord:
    """One clip as a DAVIS record: thing track ids become object ids, stuff becomes background.

    Args:
        clip: the shapes clip.
        name: the sequence name.
    """
    ids, _ = _tracks(clip)
    if ids and max(ids) >= 255:
        raise ValueError(f"clip: track ids must stay below 255 for an indexed PNG, got {max(ids)}")
    pan = np.stack([f.panoptic for f in clip.frames]).astype(np.int64)
    objects = np.where(np.isin(pan, ids), pan, 0)
    return VideoObjectRecord(
        name=name,
        file_names=[f"{t:05d}" for t in range(len(clip))],
        frames=np.stack([f.image for f in clip.frames]),
        objects=objects,
    )


#: The formats :func:`export_shapes_world` can write.
FORMATS = ("coco_panoptic", "coco_instances", "ade20k", "youtube_vis", "davis")


def shapes_dataset(world: ShapesWorld, fmt: str, num: int, *, num_frames: int = 8) -> RecordDataset[Any]:
    """The first ``num`` samples (or clips) of a shapes world as records of one format.

    Args:
        world: the shapes world (its split names the files).
        fmt: one of :data:`FORMATS`.
        num: number of images (or videos).
        num_frames: frames per clip for the video formats.

    Returns:
        A :class:`RecordDataset` with the shapes categories (none for DAVIS).

    Raises:
        ValueError: unknown format or a negative count.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    if num < 0:
        raise ValueError(f"num: expected a non-negative count, got {num}")
    split = world.split
    image_adapters: dict[str, Callable[[ShapesSample, int, str], Any]] = {
        "coco_panoptic": to_panoptic_record,
        "coco_instances": to_instance_record,
        "ade20k": to_semantic_record,
    }
    records: list[Any]
    if fmt in image_adapters:
        adapt = image_adapters[fmt]
        records = [adapt(world.sample(i), i, f"{split}_{i:06d}.png") for i in range(num)]
    elif fmt == "youtube_vis":
        records = [
            to_video_instance_record(world.sample_clip(i, num_frames=num_frames), i, f"{split}_{i:04d}")
            for i in range(num)
        ]
    else:
        records = [
            to_video_object_record(world.sample_clip(i, num_frames=num_frames), f"{split}_{i:04d}")
            for i in range(num)
        ]
    # DAVIS has no categories: its objects are class-agnostic.
    return RecordDataset(records=records, categories=[] if fmt == "davis" else shapes_categories())


def export_shapes_world(
    world: ShapesWorld, root: str | Path, fmt: str, num: int, *, num_frames: int = 8
) -> RecordDataset[Any]:
    """Write the first ``num`` samples / clips of a shapes world in a dataset format.

    Read them back with the matching reader and the split name ``world.split``
    (``read_coco_panoptic``, ``read_coco_instances``, ``read_ade20k`` with the shapes categories,
    ``read_youtube_vis``, ``read_davis``).

    Args:
        world: the shapes world.
        root: dataset root folder.
        fmt: one of :data:`FORMATS`.
        num: number of images (or videos).
        num_frames: frames per clip for the video formats.

    Returns:
        The records that were written.
    """
    ds = shapes_dataset(world, fmt, num, num_frames=num_frames)
    writers: dict[str, Callable[..., Path]] = {
        "coco_panoptic": write_coco_panoptic,
        "coco_instances": write_coco_instances,
        "ade20k": write_ade20k,
        "youtube_vis": write_youtube_vis,
        "davis": write_davis,
    }
    writers[fmt](ds, root, split=world.split)
    return ds
