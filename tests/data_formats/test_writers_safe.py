"""Writers lose nothing: a failed write leaves an existing dataset as it was, every value is checked
before a file is replaced, and a writer never produces a dataset its own reader rejects.

Each test runs on every writer of :data:`segblocks.data.formats.FORMATS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.data.formats import (
    FORMATS,
    CategoryRecord,
    RecordDataset,
    read_ade20k,
    read_coco_instances,
    read_coco_panoptic,
    read_davis,
    read_youtube_vis,
    shapes_categories,
    shapes_dataset,
    write_ade20k,
    write_coco_instances,
    write_coco_panoptic,
    write_davis,
    write_youtube_vis,
)

WRITERS: dict[str, Callable[..., Path]] = {
    "coco_panoptic": write_coco_panoptic,
    "coco_instances": write_coco_instances,
    "ade20k": write_ade20k,
    "youtube_vis": write_youtube_vis,
    "davis": write_davis,
}
READERS: dict[str, Callable[..., Any]] = {
    "coco_panoptic": read_coco_panoptic,
    "coco_instances": read_coco_instances,
    "ade20k": lambda root, split: read_ade20k(root, split=split, categories=shapes_categories()),
    "youtube_vis": read_youtube_vis,
    "davis": read_davis,
}
ID_FIELD = {"coco_panoptic": "image_id", "coco_instances": "image_id", "youtube_vis": "video_id"}


def _world(seed: int) -> ShapesWorld:
    return ShapesWorld(ShapesWorldConfig(image_size=(40, 48), seed=seed), split="val")


def _records(fmt: str, seed: int, n: int = 2) -> RecordDataset[Any]:
    return shapes_dataset(_world(seed), fmt, n, num_frames=3)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_all(fmt: str, root: Path) -> list[Any]:
    return list(READERS[fmt](root, split="val"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_write_leaves_the_dataset_as_it_was(fmt: str, tmp_path: Path) -> None:
    original = _records(fmt, seed=0)
    WRITERS[fmt](original, tmp_path, split="val")
    before = _snapshot(tmp_path)
    other = _records(fmt, seed=1)  # different content under the same names
    bad = RecordDataset(records=[other[0], other[0]], categories=other.categories)  # the 2nd repeats the 1st
    with pytest.raises(ValueError, match=r"twice|share the stem"):
        WRITERS[fmt](bad, tmp_path, split="val")
    assert _snapshot(tmp_path) == before  # nothing overwritten, no temporary file left behind
    assert _read_all(fmt, tmp_path) == list(original)


@pytest.mark.parametrize("fmt", sorted(ID_FIELD))
def test_numpy_ids_are_written_as_json_numbers(fmt: str, tmp_path: Path) -> None:
    records = list(_records(fmt, seed=0))
    for k, rec in enumerate(records):
        setattr(rec, ID_FIELD[fmt], np.int64(10 + k))
    WRITERS[fmt](RecordDataset(records=records, categories=shapes_categories()), tmp_path, split="val")
    back = _read_all(fmt, tmp_path)
    assert [getattr(r, ID_FIELD[fmt]) for r in back] == [10, 11] and back == records


@pytest.mark.parametrize("fmt", sorted(ID_FIELD))
def test_values_the_reader_would_reject_are_refused_before_writing(fmt: str, tmp_path: Path) -> None:
    cats = shapes_categories()
    twin = [*cats, CategoryRecord(99, cats[0].name, cats[0].is_thing)]
    with pytest.raises(ValueError, match="appears twice"):
        WRITERS[fmt](_records(fmt, seed=0), tmp_path, split="val", categories=twin)
    records = list(_records(fmt, seed=0))
    setattr(records[1], ID_FIELD[fmt], 1.5)
    with pytest.raises(TypeError, match="expected an int id"):
        WRITERS[fmt](RecordDataset(records=records, categories=cats), tmp_path, split="val")
    assert not any(tmp_path.iterdir())  # nothing at all was written


@pytest.mark.parametrize("fmt", ["coco_panoptic", "coco_instances"])
def test_file_names_outside_the_dataset_are_refused(fmt: str, tmp_path: Path) -> None:
    records = list(_records(fmt, seed=0))
    records[0] = dataclasses.replace(records[0], file_name="../escape.png")
    with pytest.raises(ValueError, match="relative file name inside the dataset"):
        WRITERS[fmt](
            RecordDataset(records=records, categories=shapes_categories()), tmp_path / "ds", split="val"
        )
    assert not (tmp_path / "escape.png").exists()


def test_category_flags_must_be_bools() -> None:
    with pytest.raises(TypeError, match="is_thing: expected True or False"):
        CategoryRecord(1, "cat", "false")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty category name"):
        CategoryRecord(1, " ", True)


@pytest.mark.parametrize("fmt", sorted(ID_FIELD))
def test_empty_images_are_refused_like_the_reader_would(fmt: str, tmp_path: Path) -> None:
    records = list(_records(fmt, seed=0))
    rec = records[0]
    if fmt == "coco_panoptic":
        records[0] = dataclasses.replace(rec, image=rec.image[:0], panoptic=rec.panoptic[:0], segments=[])
    elif fmt == "coco_instances":
        records[0] = dataclasses.replace(rec, image=rec.image[:0], masks=rec.masks[:, :0], areas=None)
    else:
        records[0] = dataclasses.replace(rec, frames=rec.frames[:, :0], masks=rec.masks[:, :, :0])
    with pytest.raises(ValueError, match="implausible image size 0 x"):
        WRITERS[fmt](RecordDataset(records=records, categories=shapes_categories()), tmp_path, split="val")
    assert not any(tmp_path.iterdir())
