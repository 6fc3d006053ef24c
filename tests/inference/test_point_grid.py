"""Point-grid inference pieces: the grid, inner-NMS, proposal class logits."""

from __future__ import annotations

import pytest
import torch

from segblocks.inference import mask_nms, panoptic_inference, point_grid, proposal_class_logits


def test_point_grid_is_at_cell_centres_and_rejects_zero() -> None:
    g = point_grid(2, (10, 20))
    assert g.tolist() == [[5.0, 2.5], [15.0, 2.5], [5.0, 7.5], [15.0, 7.5]]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="points_per_side"):
            point_grid(bad, (10, 10))  # type: ignore[arg-type]


def box(y0: int, x0: int, y1: int, x1: int) -> torch.Tensor:
    m = torch.zeros(20, 20, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def test_inner_nms_drops_duplicates_and_masks_inside_better_ones() -> None:
    big = box(0, 0, 20, 10)
    dup = box(0, 0, 19, 10)  # IoU 0.95 with big
    inside = box(0, 0, 8, 8)  # fully inside big
    other = box(0, 12, 20, 20)
    masks = torch.stack([dup, big, inside, other])
    keep = mask_nms(masks, torch.tensor([0.8, 0.9, 0.95, 0.7]), downsample=1.0)
    # the small mask scores best, so it is kept; big is not inside it (40 % of big's area is not >= 70 %)
    assert keep.tolist() == [2, 1, 3]
    keep = mask_nms(masks, torch.tensor([0.8, 0.9, 0.5, 0.7]), downsample=1.0)
    assert keep.tolist() == [1, 3]
    assert mask_nms(masks[:0], torch.zeros(0)).numel() == 0
    with pytest.raises(ValueError, match="iou_threshold"):
        mask_nms(masks, torch.ones(4), iou_threshold=2.0)
    with pytest.raises(TypeError, match="masks"):
        mask_nms(masks.float(), torch.ones(4))


def test_proposal_class_logits_feed_panoptic_inference() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    logits = proposal_class_logits(probs, torch.tensor([0.9, 0.7]))
    soft = logits.softmax(-1)
    assert torch.allclose(soft[0], torch.tensor([0.81, 0.09, 0.1]), atol=1e-4)
    masks = torch.stack([box(0, 0, 20, 10), box(0, 10, 20, 20)]).float() * 20 - 10
    pan = panoptic_inference(logits, masks, is_thing=[True, False], object_mask_threshold=0.3)
    assert [s.category_id for s in pan.segments] == [0, 1]
    with pytest.raises(ValueError, match="scores"):
        proposal_class_logits(probs, torch.ones(3))


def test_proposal_class_logits_argmax_rule_keeps_the_score_on_the_most_similar_class() -> None:
    probs = torch.tensor([[0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    soft = proposal_class_logits(probs, torch.tensor([0.8, 0.5])).softmax(-1)
    hard = proposal_class_logits(probs, torch.tensor([0.8, 0.5]), label_rule="argmax").softmax(-1)
    assert torch.allclose(hard[0], torch.tensor([0.8, 0.0, 0.0, 0.2]), atol=1e-4)
    assert torch.allclose(hard[1], torch.tensor([0.0, 0.0, 0.5, 0.5]), atol=1e-4)
    assert torch.equal(hard[:, :3].argmax(-1), soft[:, :3].argmax(-1))  # same labels, other confidence
    # an unsure class no longer hides a good mask from the panoptic object threshold
    masks = torch.stack([box(0, 0, 20, 10), box(0, 10, 20, 20)]).float() * 20 - 10
    for rule, kept in (("soft", [2]), ("argmax", [0, 2])):
        logits = proposal_class_logits(probs, torch.tensor([0.8, 0.9]), label_rule=rule)
        pan = panoptic_inference(logits, masks, is_thing=[True, True, False], object_mask_threshold=0.5)
        assert [s.category_id for s in pan.segments] == kept


def test_proposal_class_logits_rejects_an_unknown_label_rule() -> None:
    with pytest.raises(ValueError, match="label_rule"):
        proposal_class_logits(torch.ones(1, 2) / 2, torch.ones(1), label_rule="max")
