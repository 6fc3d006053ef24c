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


def test_clip_frames_become_tubes_one_per_track() -> None:
    from segblocks.data import ShapesClipDataset, ShapesWorldConfig, tubes_from_frames

    example = ShapesClipDataset(ShapesWorldConfig(image_size=(64, 64)), length=3, num_frames=4)[1]
    tubes = tubes_from_frames(example.targets)
    assert tubes.masks.shape[1:] == (4, 64, 64)
    ids = sorted({i for t in example.targets for i in t.instance_ids.tolist()})
    assert tubes.instance_ids.tolist() == ids
    for t, frame in enumerate(example.targets):
        for j, tid in enumerate(frame.instance_ids.tolist()):
            assert torch.equal(tubes.masks[ids.index(tid), t], frame.masks[j])
    assert torch.equal(tubes.present, tubes.masks.flatten(2).any(-1))


def test_tubes_reject_bad_clips_clearly() -> None:
    from segblocks.data import tubes_from_frames
    from segblocks.structures import Targets

    one = Targets(
        masks=torch.ones(1, 4, 4, dtype=torch.bool), labels=torch.tensor([0]), instance_ids=torch.tensor([7])
    )
    with pytest.raises(ValueError, match="at least one frame"):
        tubes_from_frames([])
    relabelled = Targets(masks=one.masks, labels=torch.tensor([1]), instance_ids=torch.tensor([7]))
    with pytest.raises(ValueError, match="track 7"):
        tubes_from_frames([one, relabelled])
    with pytest.raises(ValueError, match="frames\\[1\\]: masks of size"):
        tubes_from_frames(
            [one, Targets(masks=torch.ones(1, 5, 4, dtype=torch.bool), labels=torch.tensor([0]))]
        )
    with pytest.raises(ValueError, match="unique"):  # a track id reused for two objects in one frame
        Targets(
            masks=torch.ones(2, 4, 4, dtype=torch.bool),
            labels=torch.tensor([0, 0]),
            instance_ids=torch.tensor([7, 7]),
        )
