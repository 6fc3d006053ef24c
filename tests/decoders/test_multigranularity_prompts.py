"""Uni-OVSeg's prompt encoder, per-token mask head, random-Fourier encoding and union-of-answers masking."""

from __future__ import annotations

import pytest
import torch

from segblocks.decoders.cross_attention_masks import layer_cross_mask
from segblocks.decoders.multigranularity_prompts import (
    MultiGranularityPromptEncoder,
    PromptTokenMaskHead,
    anchor_boxes,
)
from segblocks.decoders.query_groups import QueryGroup, SelfAttentionRule, build_self_attention_mask
from segblocks.layers import RandomFourierPositionEncoding
from segblocks.structures import Prompts


def encoder(dim: int = 16, **kw: object) -> MultiGranularityPromptEncoder:
    torch.manual_seed(0)
    return MultiGranularityPromptEncoder(
        dim=dim, position_encoding=RandomFourierPositionEncoding(dim=dim), **kw
    )  # type: ignore[arg-type]


def point(x: float, y: float, label: int = 1) -> Prompts:
    return Prompts(points=torch.tensor([[[x, y]]]), point_labels=torch.tensor([[label]]))


def test_random_fourier_encoding_shapes_and_consistency() -> None:
    pe = RandomFourierPositionEncoding(dim=8)
    x = torch.zeros(2, 3, 4, 5)
    pos = pe(x)
    assert pos.shape == (2, 8, 4, 5)
    # the pixel (row 1, col 2) centre in normalised coords
    code = pe.encode(torch.tensor([(2 + 0.5) / 5, (1 + 0.5) / 4]))
    assert torch.allclose(pos[0, :, 1, 2], code, atol=1e-6)
    assert "positional_encoding_gaussian_matrix" in pe.state_dict()
    with pytest.raises(ValueError, match="dim"):
        RandomFourierPositionEncoding(dim=3)
    with pytest.raises(ValueError, match="coords"):
        pe.encode(torch.zeros(3))
    with pytest.raises(ValueError, match="num_frames"):
        pe(x, num_frames=2)


def test_anchor_boxes_points_become_small_boxes_and_outside_points_raise() -> None:
    p = Prompts(
        points=torch.tensor([[[10.0, 20.0]], [[3.0, 4.0]]]),
        point_labels=torch.tensor([[1], [0]]),
        boxes=torch.tensor([[1.0, 2.0, 30.0, 31.0]]),
    )
    boxes, is_box, positive = anchor_boxes(p, (32, 32), 4.0)
    assert boxes[0].tolist() == [8.0, 18.0, 12.0, 22.0]
    assert is_box.tolist() == [False, False, True] and positive.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="outside"):
        anchor_boxes(point(40.0, 3.0), (32, 32), 4.0)
    with pytest.raises(ValueError, match="outside"):
        anchor_boxes(Prompts(boxes=torch.tensor([[0.0, 0.0, 33.0, 5.0]])), (32, 32), 4.0)
    two_clicks = Prompts(points=torch.zeros(1, 2, 2), point_labels=torch.ones(1, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="one click"):
        anchor_boxes(two_clicks, (32, 32), 4.0)
    with pytest.raises(ValueError, match="point or box"):
        anchor_boxes(Prompts(texts=["circle"]), (32, 32), 4.0)


def test_tokens_layout_segments_and_answer_slots() -> None:
    enc = encoder()
    feats = torch.randn(2, 16, 8, 8)
    out = enc(
        [
            point(4.0, 4.0),
            Prompts(
                points=torch.tensor([[[1.0, 1.0]], [[30.0, 30.0]]]),
                point_labels=torch.ones(2, 1, dtype=torch.int64),
            ),
        ],
        (32, 32),
        feats,
    )
    t = enc.tokens_per_prompt
    assert t == 7 and out.num_prompts == [1, 2]
    g = out.group
    assert g.content.shape == (2, 2 * t, 16)
    assert g.segment_ids is not None and g.segment_ids[0].tolist() == [0] * t + [1] * t
    assert g.valid is not None and g.valid[0].tolist() == [True] * t + [False] * t
    # points answer with the 4 multi-granularity tokens
    assert g.union_from is not None and g.union_from[0, :t].tolist() == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    # self-attention stays inside a prompt
    mask = build_self_attention_mask([g])
    assert mask is not None and not bool(mask[1, 0, t]) and bool(mask[1, t, t + 3])
    box = enc([Prompts(boxes=torch.tensor([[2.0, 2.0, 20.0, 20.0]]))], (32, 32), feats[:1])
    assert box.is_box.tolist() == [[True]] and box.group.union_from is not None
    assert box.group.union_from[0].tolist() == [False, False, True, False, False, False, False]
    # the content is the mask feature sampled at the box centre: a different feature changes the corners only
    feats2 = feats.clone()
    feats2[0, :, 0, 0] += 5.0
    again = enc([point(4.0, 4.0), point(4.0, 4.0)], (32, 32), torch.cat([feats2[:1], feats2[:1]]))
    base = enc([point(4.0, 4.0), point(4.0, 4.0)], (32, 32), torch.cat([feats[:1], feats[:1]]))
    assert not torch.allclose(again.group.content[0, :2], base.group.content[0, :2])
    assert torch.equal(again.group.content[0, 2:], base.group.content[0, 2:])
    # a negative click carries another attribute embedding
    neg = enc([point(4.0, 4.0, label=0)], (32, 32), feats[:1])
    assert not torch.allclose(neg.group.content[0, :2], base.group.content[0, :2])


def test_prompt_encoder_errors() -> None:
    enc = encoder()
    with pytest.raises(ValueError, match="mask_features"):
        enc([point(1.0, 1.0)], (32, 32), torch.randn(1, 8, 8, 8))
    with pytest.raises(ValueError, match="prompts"):
        enc([], (32, 32), torch.randn(0, 16, 8, 8))
    with pytest.raises(TypeError, match="Prompts"):
        enc(["x"], (32, 32), torch.randn(1, 16, 8, 8))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="position_encoding"):
        MultiGranularityPromptEncoder(dim=16, position_encoding=RandomFourierPositionEncoding(dim=8))
    with pytest.raises(ValueError, match="num_multimask"):
        encoder(num_multimask=0)


def test_token_mask_head_uses_one_mlp_per_output_slot() -> None:
    torch.manual_seed(0)
    head = PromptTokenMaskHead(dim=8, mask_dim=4, tokens_per_prompt=7, num_outputs=5)
    q = torch.randn(1, 7, 8)
    q[0, 3] = q[0, 4]  # same embedding in two slots -> different MLPs -> different masks
    out = head(q, torch.randn(1, 4, 5, 5))
    assert out.shape == (1, 7, 5, 5)
    assert not torch.allclose(out[0, 3], out[0, 4])
    assert torch.allclose(head.embed(q)[0, 2], head.mlps[0](q[0, 2]))
    with pytest.raises(ValueError, match="multiple"):
        head.embed(torch.randn(1, 6, 8))


def test_union_from_restricts_the_shared_cross_attention_region() -> None:
    logits = torch.full((1, 3, 4, 4), -5.0)
    logits[0, 0, 0, 0] = 5.0  # token 0 (not an answer) predicts the top-left pixel
    logits[0, 1, 3, 3] = 5.0  # token 1 (the answer) predicts the bottom-right pixel
    seg = torch.zeros(1, 3, dtype=torch.int64)
    shared = [(slice(0, 3), seg, torch.tensor([[False, True, True]]))]
    mask = layer_cross_mask(logits, (4, 4), [], shared, first=False)
    assert mask[0, :, 15].all() and not mask[0, :, 0].any()
    with pytest.raises(ValueError, match="union_by_segment"):
        QueryGroup(
            name="p",
            content=torch.zeros(1, 3, 8),
            positional=torch.zeros(1, 3, 8),
            self_attention=SelfAttentionRule.only_self(),
            union_from=torch.ones(1, 3, dtype=torch.bool),
        )
