"""The shapes world: determinism, consistency of every annotation with the others, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.data import (
    CATEGORIES,
    ClassSplit,
    ShapesSample,
    ShapesWorld,
    ShapesWorldConfig,
    resolve_referring,
)
from segblocks.data.shapes.language import noisy_caption


def assert_consistent(sample: ShapesSample, config: ShapesWorldConfig, *, still: bool = True) -> None:
    """Every annotation of a sample agrees with the others.

    ``still``: a still image, where placement guarantees every part stays visible; in clips
    things may be occluded or half out of view, so a part may be hidden or be all that is left.
    """
    h, w = config.image_size
    assert sample.image.shape == (h, w, 3) and sample.image.dtype == np.uint8
    ids = {s.id for s in sample.segments}
    assert len(ids) == len(sample.segments)
    # Panoptic map and segments list name the same ids; no VOID in the shapes world.
    assert set(np.unique(sample.panoptic).tolist()) == ids
    for seg in sample.segments:
        mask = sample.panoptic == seg.id
        assert CATEGORIES[seg.category_id].is_thing == seg.is_thing
        assert (sample.semantic[mask] == seg.category_id).all()
        ys, xs = np.nonzero(mask)
        assert seg.area == mask.sum() > 0
        assert seg.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert seg.centroid == pytest.approx((xs.mean() + 0.5, ys.mean() + 0.5))
        assert (seg.colour is not None) == seg.is_thing
    stuff = [s for s in sample.segments if not s.is_thing]
    assert 1 <= len(stuff) <= 3
    assert len({s.category_id for s in stuff}) == len(stuff)
    things = sample.thing_segments
    assert len(things) <= config.num_things[1]
    # Instances, boxes and parts line up with the thing segments.
    inst = sample.instance_masks
    assert inst.shape == (len(things), h, w)
    for k, seg in enumerate(things):
        assert (inst[k] == (sample.panoptic == seg.id)).all()
        assert tuple(sample.boxes[k]) == seg.bbox
        part = sample.part_masks[k]
        assert not (part & ~inst[k]).any(), "parts lie inside their wholes"
        if still:
            assert part.any(), "every thing has a visible part"
            assert part.sum() < inst[k].sum(), "a part is a strict subset"
    assert sample.instance_labels.tolist() == [s.category_id for s in things]
    # Referring expressions pick out exactly their target.
    for expr in sample.referring:
        assert resolve_referring(expr, sample.segments) == [expr.target_id]
        assert expr.shape in expr.text
    # The clean caption names every entity.
    for seg in sample.segments:
        assert CATEGORIES[seg.category_id].name in sample.caption
    assert sorted(sample.caption_entities) == sorted(CATEGORIES[s.category_id].name for s in sample.segments)


def test_same_seed_same_sample_and_splits_differ() -> None:
    a, b = ShapesWorld(split="train").sample(3), ShapesWorld(split="train").sample(3)
    assert (a.image == b.image).all() and (a.panoptic == b.panoptic).all()
    assert a.caption == b.caption and a.noisy_caption == b.noisy_caption and a.referring == b.referring
    val = ShapesWorld(split="val").sample(3)
    assert not np.array_equal(a.image, val.image)
    other_seed = ShapesWorld(ShapesWorldConfig(seed=1), split="train").sample(3)
    assert not np.array_equal(a.image, other_seed.image)


def test_default_world_samples_are_consistent() -> None:
    world = ShapesWorld(split="val")
    for i in range(20):
        assert_consistent(world.sample(i), world.config)


def test_world_covers_every_class_and_colour() -> None:
    world = ShapesWorld(split="train")
    seen_classes, seen_colours = set(), set()
    for i in range(60):
        for seg in world.sample(i).segments:
            seen_classes.add(seg.category_id)
            seen_colours.add(seg.colour)
    assert seen_classes == {c.id for c in CATEGORIES}
    assert len(seen_colours - {None}) >= 8


@settings(max_examples=15, deadline=None)
@given(
    size=st.tuples(st.integers(32, 96), st.integers(32, 96)),
    counts=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    index=st.integers(0, 10_000),
)
def test_generation_across_sizes_and_counts(
    size: tuple[int, int], counts: tuple[int, int], index: int
) -> None:
    config = ShapesWorldConfig(
        image_size=size, num_things=(min(counts), max(counts)), thing_radius=(0.1, 0.2)
    )
    sample = ShapesWorld(config, split="test").sample(index)
    assert_consistent(sample, config)


def test_referring_relations_agree_with_the_masks() -> None:
    """Superlatives are checked against the pixel masks, independently of the resolver."""
    config = ShapesWorldConfig(num_things=(5, 8), thing_classes=("circle", "square"), colours=("red", "blue"))
    world = ShapesWorld(config, split="val")
    checked = 0
    for i in range(25):
        sample = world.sample(i)
        for expr in sample.referring:
            if expr.relation is None or expr.relation in ("largest", "smallest"):
                continue
            group = [
                s
                for s in sample.thing_segments
                if CATEGORIES[s.category_id].name == expr.shape and s.colour == expr.colour
            ]
            xs = {s.id: np.nonzero(sample.panoptic == s.id)[1].mean() for s in group}
            ys = {s.id: np.nonzero(sample.panoptic == s.id)[0].mean() for s in group}
            pick = {
                "leftmost": min(xs, key=xs.get),
                "rightmost": max(xs, key=xs.get),
                "topmost": min(ys, key=ys.get),
                "bottommost": max(ys, key=ys.get),
            }[expr.relation]
            assert pick == expr.target_id
            checked += 1
    assert checked > 0, "the crowded two-class world must produce positional expressions"


def test_noisy_caption_rates() -> None:
    sample = ShapesWorld(split="val").sample(1)
    radius = (10.0, 25.0)
    rng = np.random.default_rng(0)
    text, entities = noisy_caption(sample.segments, radius, rng, missing_rate=0.0, hallucination_rate=0.0)
    assert sorted(entities) == sorted(sample.caption_entities)
    text, entities = noisy_caption(sample.segments, radius, rng, missing_rate=1.0, hallucination_rate=0.0)
    assert entities == [] and text == "an empty scene."
    _, entities = noisy_caption(sample.segments, radius, rng, missing_rate=0.0, hallucination_rate=1.0)
    present = {CATEGORIES[s.category_id].name for s in sample.segments}
    assert len(set(entities) - present) > 0
    with pytest.raises(ValueError, match="missing_rate"):
        noisy_caption(sample.segments, radius, rng, missing_rate=1.5, hallucination_rate=0.0)


def test_clips_keep_track_ids_and_move() -> None:
    world = ShapesWorld(ShapesWorldConfig(num_things=(3, 5)), split="train")
    entered = left = 0
    for i in range(12):
        clip = world.sample_clip(i, num_frames=6)
        assert len(clip) == 6
        looks: dict[int, tuple[int, str | None]] = {}
        for frame in clip.frames:
            assert_consistent(frame, world.config, still=False)
            for seg in frame.thing_segments:
                assert looks.setdefault(seg.id, (seg.category_id, seg.colour)) == (
                    seg.category_id,
                    seg.colour,
                )
            assert [s.id for s in frame.segments if not s.is_thing] == [
                s.id for s in clip.frames[0].segments if not s.is_thing
            ], "stuff is static"
        first = {s.id for s in clip.frames[0].thing_segments}
        last = {s.id for s in clip.frames[-1].thing_segments}
        entered += len(last - first)
        left += len(first - last)
        moved = [
            s.id
            for s in clip.frames[0].thing_segments
            for t in clip.frames[-1].thing_segments
            if s.id == t.id and s.centroid != t.centroid
        ]
        assert moved or not (first & last)
    assert entered > 0 and left > 0, "over a dozen clips some things enter and some leave the view"


def test_class_split() -> None:
    split = ClassSplit(unseen=("heart", "sky"))
    assert split.unseen_ids == {9, 12}
    assert split.seen_ids.isdisjoint(split.unseen_ids)
    assert not split.is_seen("heart") and split.is_seen("circle")
    with pytest.raises(ValueError, match="unknown class name 'dragon'"):
        ClassSplit(unseen=("dragon",))
    with pytest.raises(ValueError, match="at least one stuff class must stay seen"):
        ClassSplit(unseen=("sky", "grass", "water", "sand", "wall", "road"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": (0, 128)}, "image_size: expected"),
        ({"image_size": (128, 8)}, "image_size: expected"),
        ({"num_things": (5, 2)}, "num_things: expected a .min, max. pair"),
        ({"num_things": (1, 60)}, "num_things: at most 19 things fit"),
        ({"num_stuff_regions": (1, 4)}, "num_stuff_regions"),
        ({"thing_classes": ("circle", "dragon")}, "thing_classes: unknown class name 'dragon'"),
        ({"stuff_classes": ()}, "stuff_classes: expected at least one"),
        ({"colours": ("mauve",)}, "colours: unknown class name 'mauve'"),
        ({"stuff_classes": ("sky",), "num_stuff_regions": (1, 2)}, "cannot fill 2 distinct regions"),
        ({"image_size": (32, 32), "thing_radius": (0.01, 0.2)}, "smallest thing would be"),
        ({"min_visible": 0.0}, "min_visible"),
    ],
)
def test_bad_config_raises_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShapesWorldConfig(**kwargs)


def test_bad_world_arguments() -> None:
    with pytest.raises(ValueError, match="split: expected one of"):
        ShapesWorld(split="dev")
    world = ShapesWorld(split="val")
    with pytest.raises(ValueError, match="index: expected a non-negative"):
        world.sample(-1)
    with pytest.raises(ValueError, match="num_frames"):
        world.sample_clip(0, num_frames=0)
    with pytest.raises(ValueError, match="segment_id: 77"):
        world.sample(0).mask(77)


def test_proxy_split_holds_out_a_seeded_draw_of_seen_classes() -> None:
    split = ClassSplit().proxy()
    assert split.unseen == ("heart", "crescent", "arrow", "sand", "circle", "diamond", "ring", "water")
    assert ClassSplit().proxy(seed=0) == split and ClassSplit().proxy(seed=1) != split
    assert ClassSplit(unseen=("heart", "sky")).proxy(things=1, stuff=0).unseen[:2] == ("heart", "sky")
    assert len(ClassSplit(unseen=("heart", "sky")).proxy(things=1, stuff=0).unseen) == 3
    with pytest.raises(ValueError, match=r"things: expected 0 to 8 \(of 9 seen\), got 9"):
        ClassSplit().proxy(things=9)
    with pytest.raises(ValueError, match=r"stuff: expected 0 to 4 \(of 5 seen\), got -1"):
        ClassSplit().proxy(stuff=-1)
