"""Datasets and collate functions over the shapes world."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from segblocks.data import (
    ShapesClipDataset,
    ShapesDataset,
    ShapesWorldConfig,
    collate_clips,
    collate_shapes,
)

SMALL = ShapesWorldConfig(image_size=(48, 64), num_things=(1, 3), thing_radius=(0.12, 0.25))


def test_dataset_items_and_batches() -> None:
    ds = ShapesDataset(SMALL, split="val", length=4)
    example = ds[0]
    assert example.image.shape == (3, 48, 64) and example.image.dtype == torch.float32
    assert 0.0 <= float(example.image.min()) and float(example.image.max()) <= 1.0
    # Targets cover every pixel exactly once (things and stuff), and match the semantic map.
    t = example.targets
    assert (t.masks.sum(0) == 1).all()
    for mask, label in zip(t.masks, t.labels):
        assert (example.semantic[mask] == label).all()
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_shapes)))
    assert batch.images.shape == (2, 3, 48, 64) and batch.semantic.shape == (2, 48, 64)
    assert len(batch) == 2 and len(batch.targets) == 2
    assert torch.equal(batch.images[1], ds[1].image)


def test_seen_class_targets_drop_unseen_segments() -> None:
    ds = ShapesDataset(split="train", length=30)
    seen = ds.world.config.split.seen_ids
    for i in range(30):
        sample = ds.world.sample(i)
        targets = sample.to_targets(categories=seen)
        assert set(targets.labels.tolist()) <= seen
        assert len(targets) == sum(s.category_id in seen for s in sample.segments)
        things = sample.to_targets(include_stuff=False)
        assert bool(things.is_thing.all()) and len(things) == len(sample.thing_segments)


def test_clip_dataset() -> None:
    ds = ShapesClipDataset(SMALL, split="val", length=2, num_frames=3)
    example = ds[1]
    assert example.frames.shape == (3, 3, 48, 64)
    assert len(example.targets) == 3
    assert len(collate_clips([ds[0], example])) == 2


def test_dataset_errors() -> None:
    with pytest.raises(ValueError, match="length: expected a positive"):
        ShapesDataset(length=0)
    with pytest.raises(IndexError, match="out of range"):
        ShapesDataset(SMALL, length=2)[2]
    with pytest.raises(ValueError, match="num_frames"):
        ShapesClipDataset(num_frames=0)
    a = ShapesDataset(SMALL, length=1)[0]
    b = ShapesDataset(
        ShapesWorldConfig(image_size=(32, 32), num_things=(1, 2), thing_radius=(0.15, 0.3)), length=1
    )[0]
    with pytest.raises(ValueError, match="must share one size"):
        collate_shapes([a, b])
    with pytest.raises(ValueError, match="at least one"):
        collate_shapes([])
