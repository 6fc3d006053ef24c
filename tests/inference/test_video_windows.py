"""Long videos in windows: query linking recovers a shuffled order, the linker averages class scores and
concatenates tubes, first-frame masks pick the queries that follow each object."""

from __future__ import annotations

import pytest
import torch

from segblocks.inference import TubeLinker, assign_objects, clip_windows, link_queries, object_masks


def test_windows_cover_the_video_without_overlap() -> None:
    assert clip_windows(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert clip_windows(2, 5) == [slice(0, 2)]
    with pytest.raises(ValueError, match="num_frames"):
        clip_windows(0, 3)
    with pytest.raises(ValueError, match="window"):
        clip_windows(3, 0)


def test_linking_undoes_a_shuffle_of_the_queries() -> None:
    torch.manual_seed(0)
    emb = torch.randn(6, 8)
    shuffle = torch.randperm(6)
    noisy = emb[shuffle] + 0.05 * torch.randn(6, 8)
    perm = link_queries(emb, noisy)
    assert torch.equal(shuffle[perm], torch.arange(6))  # current[perm[i]] continues previous[i]
    with pytest.raises(ValueError, match="current"):
        link_queries(emb, emb[:3])


def test_the_linker_keeps_each_object_on_one_query_and_averages_its_classes() -> None:
    torch.manual_seed(0)
    emb = torch.randn(3, 8)
    masks = torch.randn(3, 2, 4, 4)
    classes = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    linker = TubeLinker()
    linker.add(masks, classes, emb)
    order = torch.tensor([2, 0, 1])
    second_classes = classes[order].clone()
    second_classes[1, 0] = 0.0  # the object on query 0 is less sure of its class in window 2
    perm = linker.add(masks[order], second_classes, emb[order])
    assert torch.equal(order[perm], torch.arange(3))
    tubes, log_probs = linker.result()
    assert tubes.shape == (3, 4, 4, 4)
    torch.testing.assert_close(tubes[:, 2:], masks.half().float())  # window 2 realigned to window 1
    expected = (classes.softmax(-1) + second_classes[perm].softmax(-1)) / 2
    torch.testing.assert_close(log_probs.exp(), expected)
    with pytest.raises(ValueError, match="mask_logits: window masks"):
        linker.add(torch.randn(3, 2, 5, 5), classes, emb)
    with pytest.raises(ValueError, match="no window"):
        TubeLinker().result()


def test_first_frame_masks_choose_the_queries_that_follow_each_object() -> None:
    first = torch.zeros(2, 8, 8, dtype=torch.bool)
    first[0, :4, :4], first[1, 4:, 4:] = True, True
    proposals = torch.full((3, 8, 8), -5.0)
    proposals[2, :4, :4] = 5.0
    proposals[0, 4:, 4:] = 5.0
    assignment = assign_objects(first, proposals)
    assert assignment.tolist() == [2, 0]
    tubes = proposals[:, None].repeat(1, 3, 1, 1)
    objects = object_masks(tubes, assignment)
    assert (
        objects.shape == (2, 3, 8, 8)
        and torch.equal(objects[0, 1], first[0])
        and not (objects[0] & objects[1]).any()
    )
    with pytest.raises(ValueError, match="non-empty"):
        assign_objects(torch.zeros(1, 8, 8, dtype=torch.bool), proposals)
    with pytest.raises(ValueError, match="cannot follow"):
        assign_objects(first.repeat(2, 1, 1), proposals)
