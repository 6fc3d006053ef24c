"""OMG-Seg's location queries from the one Prompts structure: points become explicit boxes, each query
starts inside its box and attends only to itself, padding prompts are hidden, bad prompts fail clearly."""

from __future__ import annotations

import pytest
import torch

from segblocks.decoders import LocationPromptEncoder, build_masked_attention_decoder, prompt_boxes
from segblocks.structures import Prompts


def one_point(x: float, y: float) -> Prompts:
    return Prompts(points=torch.tensor([[[x, y]]]), point_labels=torch.ones(1, 1, dtype=torch.int64))


def test_points_become_explicit_boxes_and_boxes_stay() -> None:
    prompts = Prompts(
        points=torch.tensor([[[10.0, 20.0]], [[0.0, 1.0]]]),
        point_labels=torch.ones(2, 1, dtype=torch.int64),
        boxes=torch.tensor([[4.0, 4.0, 30.0, 12.0]]),
    )
    boxes, is_box = prompt_boxes(prompts, (64, 64), point_box_size=6.0)
    torch.testing.assert_close(
        boxes, torch.tensor([[7.0, 17.0, 13.0, 23.0], [0.0, 0.0, 3.0, 4.0], [4, 4, 30, 12.0]])
    )
    assert is_box.tolist() == [False, False, True]
    zero, _ = prompt_boxes(prompts, (64, 64), point_box_size=None)
    torch.testing.assert_close(zero[0], torch.tensor([10.0, 20.0, 10.0, 20.0]))


def test_location_queries_start_in_their_box_attend_to_themselves_and_pad() -> None:
    torch.manual_seed(0)
    encoder = LocationPromptEncoder(dim=16, sine_dim=8)
    two = Prompts(boxes=torch.tensor([[0.0, 0.0, 32.0, 32.0], [32.0, 32.0, 64.0, 64.0]]))
    group = encoder([one_point(40.0, 8.0), two], (64, 64))
    assert group.content.shape == (2, 2, 16) and group.valid is not None
    assert group.valid.tolist() == [[True, False], [True, True]]
    assert group.cross_mask is not None and group.cross_mask.shape == (2, 2, 16, 16)
    assert group.cross_mask[1, 0, :8, :8].all() and not group.cross_mask[1, 0, 8:].any()
    assert group.cross_mask[0, 0].sum() > 0 and group.cross_mask[0, 0, 2, 10]
    # point and box prompts differ in content, boxes in position
    assert not torch.allclose(group.content[0, 0], group.content[1, 0])
    assert not torch.allclose(group.positional[1, 0], group.positional[1, 1])

    decoder = build_masked_attention_decoder(
        dim=16, num_heads=2, ffn_dim=32, num_layers=2, in_channels=(16, 16), mask_dim=16
    ).eval()
    feats = [torch.randn(2, 16, 4, 4), torch.randn(2, 16, 8, 8)]
    mask_features = torch.randn(2, 16, 16, 16)
    out = decoder([group], feats, mask_features)
    alone = decoder([encoder([one_point(40.0, 8.0)] * 2, (64, 64))], feats, mask_features)
    # the first image's real query does not see the padding query: same as with its prompt alone
    torch.testing.assert_close(out.queries[-1][0, 0], alone.queries[-1][0, 0])
    out.mask_logits[-1].sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_bad_prompts_name_the_problem() -> None:
    encoder = LocationPromptEncoder(dim=16, sine_dim=8)
    with pytest.raises(ValueError, match="outside the 64x64 image"):
        encoder([one_point(70.0, 8.0)], (64, 64))
    with pytest.raises(ValueError, match="one positive click"):
        encoder(
            [Prompts(points=torch.rand(1, 2, 2), point_labels=torch.ones(1, 2, dtype=torch.int64))], (64, 64)
        )
    with pytest.raises(ValueError, match="point or box"):
        encoder([Prompts(texts=["a star"])], (64, 64))
    with pytest.raises(ValueError, match="finite"):
        encoder([one_point(float("nan"), 3.0)], (64, 64))
    with pytest.raises(ValueError, match="one Prompts per image"):
        encoder([], (64, 64))
    with pytest.raises(TypeError, match="prompts\\[0\\]"):
        encoder(["a star"], (64, 64))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="point_box_size"):
        LocationPromptEncoder(dim=16, point_box_size=-1.0)
