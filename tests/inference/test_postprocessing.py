"""Panoptic, semantic and instance post-processing, and the padding helpers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.inference import (
    check_tasks,
    instance_inference,
    pad_images,
    pad_masks,
    pad_targets,
    padded_size,
    panoptic_inference,
    postprocess_batch,
    prepare_images,
    semantic_inference,
    unpad_mask_logits,
)
from segblocks.structures import Targets

IS_THING = [True, True, False]  # classes 0, 1 things; 2 stuff


def logits_for(classes: list[int], probs: list[float], num_classes: int = 3) -> torch.Tensor:
    """Class logits whose softmax puts ``probs[q]`` on ``classes[q]`` (the rest spread evenly)."""
    out = torch.empty(len(classes), num_classes + 1)
    for q, (c, p) in enumerate(zip(classes, probs)):
        rest = (1 - p) / num_classes
        row = torch.full((num_classes + 1,), rest)
        row[c] = p
        out[q] = row.log()
    return out


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.full((h, w), -10.0)
    m[y0:y1, x0:x1] = 10.0
    return m


def test_panoptic_things_stuff_merge_and_void() -> None:
    h = w = 8
    masks = torch.stack(
        [
            box(h, w, 0, 4, 0, 4),  # thing 0
            box(h, w, 4, 8, 4, 8),  # thing 1
            box(h, w, 0, 4, 4, 8),  # stuff 2, part a
            box(h, w, 4, 8, 0, 4),  # stuff 2, part b -> merged with part a
            box(h, w, 0, 8, 0, 8),  # low confidence: dropped
            box(h, w, 0, 8, 0, 8),  # void: dropped
        ]
    )
    cls = logits_for([0, 1, 2, 2, 0, 3], [0.95, 0.9, 0.99, 0.97, 0.5, 0.99])
    result = panoptic_inference(cls, masks, is_thing=IS_THING)
    ids = {s.id: s for s in result.segments}
    assert len(ids) == 3
    seg = result.segment_map
    thing0, thing1, stuff = int(seg[0, 0]), int(seg[7, 7]), int(seg[0, 7])
    assert int(seg[7, 0]) == stuff, "stuff of one class is merged"
    assert (ids[thing0].category_id, ids[thing0].is_thing) == (0, True)
    assert ids[thing1].category_id == 1 and ids[stuff].category_id == 2 and not ids[stuff].is_thing
    assert abs(ids[thing0].score - 0.95) < 1e-5
    assert int((seg == thing0).sum()) == 16


def test_panoptic_overlap_threshold_drops_occluded_queries() -> None:
    h = w = 8
    big = box(h, w, 0, 8, 0, 8)
    small = box(h, w, 0, 8, 0, 2)  # mostly claimed by the more confident big mask
    cls = logits_for([0, 1], [0.99, 0.85])
    result = panoptic_inference(cls, torch.stack([big, small]), is_thing=IS_THING)
    assert [s.category_id for s in result.segments] == [0]
    kept = panoptic_inference(cls, torch.stack([box(h, w, 0, 8, 2, 8), small]), is_thing=IS_THING)
    assert sorted(s.category_id for s in kept.segments) == [0, 1]
    assert (
        panoptic_inference(
            cls, torch.stack([big, small]), is_thing=IS_THING, object_mask_threshold=0.999
        ).segments
        == []
    )
    empty = panoptic_inference(cls, torch.stack([big, small]), is_thing=IS_THING, object_mask_threshold=1.0)
    assert int(empty.segment_map.max()) == 0


def test_semantic_inference_is_soft_class_times_mask() -> None:
    torch.manual_seed(0)
    cls, masks = torch.randn(5, 4), torch.randn(5, 6, 7)
    result = semantic_inference(cls, masks)
    expected = torch.einsum("qc,qhw->chw", cls.softmax(-1)[:, :3], masks.sigmoid())
    torch.testing.assert_close(result.scores, expected)
    assert torch.equal(result.label_map, expected.argmax(0))


def test_instance_inference_scores_and_thing_filter() -> None:
    h = w = 8
    masks = torch.stack([box(h, w, 0, 4, 0, 4), box(h, w, 4, 8, 4, 8), box(h, w, 0, 8, 0, 8)])
    masks[1, 4:8, 4:8] = 0.0  # sigmoid 0.5 inside: mask score 0.5
    cls = logits_for([0, 1, 2], [0.9, 0.8, 0.99])
    result = instance_inference(cls, masks, top_k=3, is_thing=IS_THING)
    assert result.labels.tolist() == [0, 1], "stuff pairs are dropped"
    torch.testing.assert_close(
        result.scores, torch.tensor([0.9 * torch.sigmoid(torch.tensor(10.0)), 0.8 * 0.5])
    )
    assert result.masks.dtype == torch.bool and int(result.masks[0].sum()) == 16
    all_pairs = instance_inference(cls, masks, top_k=100)
    assert len(all_pairs.labels) == 9, "top_k is capped at Q * C"


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.sampled_from([1, 8, 32]))
def test_padding_round_trip(h: int, w: int, d: int) -> None:
    images = torch.rand(1, 3, h, w)
    padded = pad_images(images, d)
    ph, pw = padded.shape[-2:]
    assert (ph, pw) == padded_size(h, w, d)
    assert ph % d == 0 and pw % d == 0 and ph - h < d and pw - w < d
    assert torch.equal(padded[..., :h, :w], images)
    logits = torch.randn(2, ph, pw)
    assert torch.equal(unpad_mask_logits(logits, (ph, pw), (h, w)), logits[:, :h, :w])
    masks = pad_masks(torch.ones(2, h, w, dtype=torch.bool), (ph, pw))
    assert int(masks.sum()) == 2 * h * w


def test_errors() -> None:
    with pytest.raises(ValueError, match="is_thing: expected 3 flags"):
        panoptic_inference(torch.randn(2, 4), torch.randn(2, 5, 5), is_thing=[True])
    with pytest.raises(ValueError, match="overlap_threshold"):
        panoptic_inference(torch.randn(2, 4), torch.randn(2, 5, 5), is_thing=IS_THING, overlap_threshold=2.0)
    with pytest.raises(ValueError, match="mask_logits: expected 2 queries"):
        semantic_inference(torch.randn(2, 4), torch.randn(3, 5, 5))
    with pytest.raises(ValueError, match="class_logits"):
        semantic_inference(torch.randn(2, 1), torch.randn(2, 5, 5))
    with pytest.raises(TypeError, match="mask_logits"):
        instance_inference(torch.randn(2, 4), torch.zeros(2, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="top_k"):
        instance_inference(torch.randn(2, 4), torch.randn(2, 5, 5), top_k=0)
    with pytest.raises(ValueError, match="do not fit"):
        pad_masks(torch.ones(1, 9, 9, dtype=torch.bool), (8, 8))
    with pytest.raises(ValueError, match="image_size"):
        unpad_mask_logits(torch.randn(1, 4, 4), (8, 8), (9, 8))
    with pytest.raises(TypeError, match="images"):
        pad_images(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 8)


def test_prepare_images_pads_or_refuses() -> None:
    images = torch.rand(2, 3, 30, 40)
    padded = prepare_images(images, 32)
    assert padded.shape == (2, 3, 32, 64) and torch.equal(padded[..., :30, :40], images)
    assert prepare_images(padded, 32) is padded
    with pytest.raises(ValueError, match="size_divisibility=32 and pad_inputs=False; pad to 32x64"):
        prepare_images(images, 32, pad=False)
    with pytest.raises(ValueError, match="non-empty"):
        prepare_images(torch.rand(0, 3, 32, 32), 32)
    with pytest.raises(TypeError, match="images"):
        prepare_images(torch.zeros(1, 3, 32, 32, dtype=torch.long), 32)


def test_postprocess_batch_runs_each_task_per_image_at_its_own_size() -> None:
    torch.manual_seed(0)
    mask_logits = torch.randn(2, 3, 8, 8)  # stride-4 masks of a 32x32 padded batch
    class_logits = torch.stack([logits_for([0, 2, 1], [0.9, 0.95, 0.85])] * 2)
    sizes = [(32, 32), (30, 27)]
    results = postprocess_batch(
        mask_logits, class_logits, IS_THING, padded=(32, 32), image_sizes=sizes, top_k=5
    )
    for i, (result, size) in enumerate(zip(results, sizes)):
        masks = unpad_mask_logits(mask_logits[i], (32, 32), size)
        expected = panoptic_inference(class_logits[i], masks, is_thing=IS_THING)
        assert result.panoptic is not None and result.semantic is not None and result.instance is not None
        assert torch.equal(result.panoptic.segment_map, expected.segment_map)
        assert result.panoptic.segment_map.shape == size
        assert torch.equal(result.semantic.label_map, semantic_inference(class_logits[i], masks).label_map)
        assert torch.equal(
            result.instance.scores,
            instance_inference(class_logits[i], masks, top_k=5, is_thing=IS_THING).scores,
        )
    only = postprocess_batch(
        mask_logits, class_logits, IS_THING, padded=(32, 32), image_sizes=sizes, tasks=("semantic",)
    )
    assert only[0].panoptic is None and only[0].instance is None and only[0].semantic is not None
    with pytest.raises(ValueError, match="tasks: expected a non-empty subset"):
        postprocess_batch(mask_logits, class_logits, IS_THING, padded=(32, 32), image_sizes=sizes, tasks=())
    with pytest.raises(ValueError, match="tasks: expected a non-empty subset"):
        check_tasks(["panoptic", "depth"])
    with pytest.raises(ValueError, match="image_sizes: expected 2 sizes, got 1"):
        postprocess_batch(mask_logits, class_logits, IS_THING, padded=(32, 32), image_sizes=sizes[:1])
    with pytest.raises(ValueError, match="class_logits"):
        postprocess_batch(mask_logits, class_logits[0], IS_THING, padded=(32, 32), image_sizes=sizes)


def test_pad_targets_pads_masks_and_checks_types() -> None:
    masks = torch.ones(2, 5, 6, dtype=torch.bool)
    t = Targets(masks=masks, labels=torch.tensor([0, 2]))
    empty = Targets(masks=torch.zeros(0, 4, 4, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64))
    out = pad_targets([t, empty], (8, 8))
    assert out[0].masks.shape == (2, 8, 8) and out[1].masks.shape == (0, 8, 8)
    assert (
        out[0].masks[:, :5, :6].all() and not out[0].masks[:, 5:].any() and not out[0].masks[:, :, 6:].any()
    )
    assert torch.equal(out[0].labels, t.labels)
    with pytest.raises(TypeError, match="expected a list of Targets"):
        pad_targets(t, (8, 8))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"targets\[1\]"):
        pad_targets([t, "x"], (8, 8))  # type: ignore[list-item]
    with pytest.raises(ValueError):
        pad_targets([t], (4, 4))
