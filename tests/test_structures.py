"""Typed containers validate on creation and name the bad field."""

from __future__ import annotations

import pytest
import torch

from segblocks.structures import (
    InstanceResult,
    MaskPredictions,
    PanopticResult,
    Prompts,
    SegmentInfo,
    SemanticResult,
    ShapeSpec,
    Targets,
)


def test_valid_containers() -> None:
    p = Prompts(
        points=torch.rand(2, 3, 2),
        point_labels=torch.tensor([[1, 0, -1], [1, 1, 1]]),
        boxes=torch.tensor([[0.0, 0.0, 4.0, 5.0]]),
        masks=torch.zeros(1, 8, 8, dtype=torch.bool),
        strokes=[torch.rand(4, 2)],
        texts=["the red circle"],
    )
    assert p.points is not None
    t = Targets(masks=torch.zeros(3, 8, 8, dtype=torch.bool), labels=torch.tensor([0, 1, 2]))
    assert t.instance_ids is not None and t.instance_ids.tolist() == [1, 2, 3]
    assert t.is_thing is not None and bool(t.is_thing.all()) and len(t) == 3
    assert len(t.to("cpu")) == 3
    empty = Targets(masks=torch.zeros(0, 8, 8, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64))
    assert len(empty) == 0
    preds = MaskPredictions(
        mask_logits=torch.zeros(2, 5, 8, 8), class_logits=torch.zeros(2, 5, 4), iou_scores=torch.zeros(2, 5)
    )
    assert preds.aux == []
    PanopticResult(segment_map=torch.zeros(4, 4, dtype=torch.int64), segments=[SegmentInfo(1, 0, True)])
    SemanticResult(label_map=torch.zeros(4, 4, dtype=torch.int64), scores=torch.zeros(3, 4, 4))
    InstanceResult(
        masks=torch.zeros(2, 4, 4, dtype=torch.bool),
        labels=torch.tensor([0, 1]),
        scores=torch.tensor([0.5, 0.2]),
    )


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Prompts(), ValueError, "empty prompt"),
        (lambda: Prompts(points=torch.rand(1, 2, 2)), ValueError, "point_labels: points and point_labels"),
        (
            lambda: Prompts(points=torch.rand(1, 2, 3), point_labels=torch.ones(1, 2, dtype=torch.int64)),
            ValueError,
            "points: expected shape",
        ),
        (
            lambda: Prompts(
                points=torch.ones(1, 2, 2, dtype=torch.int64),
                point_labels=torch.ones(1, 2, dtype=torch.int64),
            ),
            TypeError,
            "points: expected a floating dtype",
        ),
        (
            lambda: Prompts(points=torch.rand(1, 2, 2), point_labels=torch.ones(1, 3, dtype=torch.int64)),
            ValueError,
            "point_labels: expected shape",
        ),
        (
            lambda: Prompts(points=torch.rand(1, 2, 2), point_labels=torch.full((1, 2), 2)),
            ValueError,
            "point_labels: values must be",
        ),
        (
            lambda: Prompts(points=torch.rand(1, 2, 2), point_labels=torch.full((1, 2), -1)),
            ValueError,
            "at least one non-padding click",
        ),
        (
            lambda: Prompts(points=torch.rand(0, 2, 2), point_labels=torch.ones(0, 2, dtype=torch.int64)),
            ValueError,
            "points: empty prompt",
        ),
        (lambda: Prompts(boxes=torch.tensor([[4.0, 0.0, 1.0, 5.0]])), ValueError, "boxes: expected x2 >= x1"),
        (lambda: Prompts(boxes=torch.zeros(0, 4)), ValueError, "boxes: empty prompt"),
        (lambda: Prompts(masks=torch.zeros(1, 4, 4)), TypeError, "masks: expected a bool dtype"),
        (lambda: Prompts(strokes=[]), ValueError, "strokes: empty prompt"),
        (
            lambda: Prompts(strokes=[torch.zeros(0, 2)]),
            ValueError,
            "strokes\\[0\\]: expected at least one point",
        ),
        (lambda: Prompts(texts=["cat", " "]), ValueError, "texts\\[1\\]: expected a non-empty string"),
        (
            lambda: Targets(masks=torch.zeros(2, 4, 4), labels=torch.tensor([0, 1])),
            TypeError,
            "masks: expected a bool dtype",
        ),
        (
            lambda: Targets(masks=torch.zeros(2, 4, 4, dtype=torch.bool), labels=torch.tensor([0])),
            ValueError,
            "labels: expected shape \\(2,\\)",
        ),
        (
            lambda: Targets(masks=torch.zeros(2, 4, 4, dtype=torch.bool), labels=torch.tensor([0.0, 1.0])),
            TypeError,
            "labels: expected an integer dtype",
        ),
        (
            lambda: Targets(
                masks=torch.zeros(2, 4, 4, dtype=torch.bool),
                labels=torch.tensor([0, 1]),
                instance_ids=torch.tensor([3, 3]),
            ),
            ValueError,
            "instance_ids: expected unique",
        ),
        (
            lambda: Targets(masks=torch.zeros(4, 4, dtype=torch.bool), labels=torch.tensor([0])),
            ValueError,
            "masks: expected \\[N, H, W\\] \\(image\\) or \\[N, T, H, W\\]",
        ),
        (
            lambda: Targets(
                masks=torch.zeros(1, 4, 4, dtype=torch.bool),
                labels=torch.tensor([0]),
                is_thing=torch.tensor([1]),
            ),
            TypeError,
            "is_thing: expected a bool dtype",
        ),
        (
            lambda: MaskPredictions(mask_logits=torch.zeros(2, 5, 8)),
            ValueError,
            "mask_logits: expected \\[B, Q, H, W\\] or tubes",
        ),
        (
            lambda: MaskPredictions(mask_logits=torch.zeros(2, 5, 8, 8), class_logits=torch.zeros(2, 4, 3)),
            ValueError,
            "class_logits: expected shape",
        ),
        (
            lambda: MaskPredictions(mask_logits=torch.zeros(2, 5, 8, 8, dtype=torch.int64)),
            TypeError,
            "mask_logits: expected a floating",
        ),
        (lambda: SegmentInfo(0, 1, True), ValueError, "id: panoptic segment ids are positive"),
        (
            lambda: PanopticResult(
                segment_map=torch.zeros(4, 4, dtype=torch.int64),
                segments=[SegmentInfo(1, 0, True), SegmentInfo(1, 2, False)],
            ),
            ValueError,
            "duplicate segment ids",
        ),
        (
            lambda: SemanticResult(
                label_map=torch.zeros(4, 4, dtype=torch.int64), scores=torch.zeros(3, 4, 5)
            ),
            ValueError,
            "scores: expected shape",
        ),
        (
            lambda: InstanceResult(
                masks=torch.zeros(1, 4, 4, dtype=torch.bool),
                labels=torch.tensor([0]),
                scores=torch.tensor([1]),
            ),
            TypeError,
            "scores: expected a floating",
        ),
        (lambda: ShapeSpec(channels=0, stride=4), ValueError, "channels: expected a positive"),
        (
            lambda: Targets(masks="mask", labels=torch.tensor([0])),
            TypeError,
            "masks: expected a torch.Tensor, got str",
        ),
    ],
)
def test_bad_fields_raise_errors_naming_them(build, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_batch_carries_images_or_clips_with_matching_targets_and_prompts() -> None:
    from segblocks.structures import Batch

    image_targets = [Targets(masks=torch.zeros(1, 8, 8, dtype=torch.bool), labels=torch.tensor([0]))]
    batch = Batch(images=torch.rand(1, 3, 8, 8), targets=image_targets, prompts=[None])
    assert batch.num_frames is None and len(batch) == 1
    moved = batch.to("cpu")
    assert moved.targets is not None and moved.targets[0].masks.shape == (1, 8, 8)
    tubes = [Targets(masks=torch.zeros(2, 4, 8, 8, dtype=torch.bool), labels=torch.tensor([0, 1]))]
    assert Batch(images=torch.rand(1, 4, 3, 8, 8), targets=tubes).num_frames == 4
    with pytest.raises(ValueError, match="tubes of T=4"):
        Batch(images=torch.rand(1, 4, 3, 8, 8), targets=image_targets)
    with pytest.raises(ValueError, match="targets: expected 2"):
        Batch(images=torch.rand(2, 3, 8, 8), targets=image_targets)
    with pytest.raises(ValueError, match="images: expected"):
        Batch(images=torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="empty batch"):
        Batch(images=torch.rand(0, 3, 8, 8))
    with pytest.raises(TypeError, match="prompts\\[0\\]"):
        Batch(images=torch.rand(1, 3, 8, 8), prompts=["a cat"])  # type: ignore[list-item]


def test_targets_to_does_not_revalidate() -> None:
    t = Targets(masks=torch.zeros(2, 4, 4, dtype=torch.bool), labels=torch.tensor([0, 1]))
    calls = []
    original = torch.unique
    torch.unique = lambda *a, **k: calls.append(1) or original(*a, **k)  # type: ignore[assignment]
    try:
        moved = t.to("cpu")
    finally:
        torch.unique = original  # type: ignore[assignment]
    assert not calls and torch.equal(moved.labels, t.labels) and moved is not t
