"""The masked-attention mask decoder: parity of its attention with torch's MultiheadAttention, the
attention-mask rule, the query-group rules as observable invariances, deep supervision, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segblocks.decoders import (
    MaskedAttentionDecoder,
    MultiHeadAttention,
    QueryGroup,
    SelfAttentionRule,
    build_masked_attention_decoder,
)

D = 16


def features(b: int = 2) -> list[torch.Tensor]:
    return [torch.randn(b, D, s, s) for s in (2, 4, 8)]


def decoder(layers: int = 3) -> MaskedAttentionDecoder:
    torch.manual_seed(0)
    return build_masked_attention_decoder(
        dim=D, num_heads=2, ffn_dim=32, num_layers=layers, in_channels=(D, D, D), mask_dim=D
    ).eval()


def semantic(q: int = 5, b: int = 2) -> QueryGroup:
    return QueryGroup(name="semantic", content=torch.randn(b, q, D), positional=torch.randn(b, q, D))


def test_attention_matches_torch_multihead_attention() -> None:
    torch.manual_seed(0)
    ours = MultiHeadAttention(dim=D, num_heads=4, backend="reference")
    ref = nn.MultiheadAttention(D, 4, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    q, k, v = torch.randn(2, 5, D), torch.randn(2, 7, D), torch.randn(2, 7, D)
    allowed = torch.rand(2, 5, 7) > 0.4
    allowed[:, :, 0] = True  # no empty row: torch would give NaN there
    expected, _ = ref(q, k, v, attn_mask=(~allowed).repeat_interleave(4, dim=0), need_weights=False)
    torch.testing.assert_close(ours(q, k, v, allowed), expected, rtol=1e-5, atol=1e-5)
    for backend in ("sdpa", "auto"):
        ours.backend = backend
        torch.testing.assert_close(ours(q, k, v, allowed), expected, rtol=1e-5, atol=1e-5)


def test_attention_mask_is_the_previous_prediction_above_one_half() -> None:
    logits = torch.tensor([[[[-3.0, 3.0], [0.5, -0.5]]]])  # [1, 1, 2, 2]
    mask = MaskedAttentionDecoder.attention_mask(logits, (2, 2))
    assert mask.tolist() == [[[False, True, True, False]]]
    assert MaskedAttentionDecoder.attention_mask(logits, (4, 4)).shape == (1, 1, 16)
    assert not MaskedAttentionDecoder.attention_mask(logits.requires_grad_(), (2, 2)).requires_grad


def test_outputs_for_deep_supervision_and_gradients() -> None:
    dec = decoder(layers=4).train()
    feats, mask_features = features(), torch.randn(2, D, 16, 16)
    group = semantic()
    group.content.requires_grad_(True)
    out = dec([group], feats, mask_features)
    assert len(out.queries) == len(out.mask_logits) == dec.num_predictions == 5
    assert all(m.shape == (2, 5, 16, 16) for m in out.mask_logits)
    assert all(q.shape == (2, 5, D) for q in out.queries)
    sum(m.square().mean() for m in out.mask_logits).backward()
    missing = [n for n, p in dec.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert group.content.grad is not None


def test_only_self_queries_ignore_other_queries() -> None:
    dec = decoder()
    feats, mask_features = features(), torch.randn(2, D, 16, 16)
    loc = QueryGroup(
        name="location",
        content=torch.randn(2, 3, D),
        positional=torch.randn(2, 3, D),
        self_attention=SelfAttentionRule.only_self(),
    )
    a = dec([semantic(), loc], feats, mask_features)
    b = dec([semantic(), loc], feats, mask_features)  # other semantic queries
    torch.testing.assert_close(a.group("location").mask_logits[-1], b.group("location").mask_logits[-1])
    assert not torch.allclose(a.group("semantic").mask_logits[-1], b.group("semantic").mask_logits[-1])
    # and a plain group would have been influenced
    loc_all = QueryGroup(name="location", content=loc.content, positional=loc.positional)
    c = dec([semantic(), loc_all], feats, mask_features)
    d = dec([semantic(), loc_all], feats, mask_features)
    assert not torch.allclose(c.group("location").mask_logits[-1], d.group("location").mask_logits[-1])


def test_prompts_are_independent_under_same_segment_rule() -> None:
    dec = decoder()
    feats, mask_features = features(1), torch.randn(1, D, 16, 16)
    seg = torch.tensor([[0, 0, 1, 1]])
    content = torch.randn(1, 4, D)
    pos = torch.randn(1, 4, D)
    changed = content.clone()
    changed[:, 2:] += 1.0  # edit prompt 1 only
    outs = [
        dec(
            [
                QueryGroup(
                    name="p",
                    content=c,
                    positional=pos,
                    self_attention=SelfAttentionRule.same_segment(),
                    segment_ids=seg,
                )
            ],
            feats,
            mask_features,
        ).mask_logits[-1]
        for c in (content, changed)
    ]
    torch.testing.assert_close(outs[0][:, :2], outs[1][:, :2])
    assert not torch.allclose(outs[0][:, 2:], outs[1][:, 2:])


def test_group_that_does_not_cross_attend_ignores_the_image() -> None:
    dec = decoder()
    tokens = QueryGroup(
        name="tokens",
        content=torch.randn(2, 3, D),
        positional=torch.randn(2, 3, D),
        self_attention=SelfAttentionRule.only_self(),
        cross_attends=False,
    )
    mask_features = torch.randn(2, D, 16, 16)
    a = dec([semantic(), tokens], features(), mask_features)
    b = dec([semantic(), tokens], features(), mask_features)  # other image features
    torch.testing.assert_close(a.group("tokens").queries[-1], b.group("tokens").queries[-1])
    assert not torch.allclose(a.group("semantic").queries[-1], b.group("semantic").queries[-1])


def test_bf16_autocast_has_no_nan() -> None:
    dec = decoder()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dec([semantic()], features(), torch.randn(2, D, 16, 16))
    assert all(torch.isfinite(m.float()).all() for m in out.mask_logits)


def test_errors() -> None:
    dec = decoder()
    feats, mf = features(), torch.randn(2, D, 16, 16)
    with pytest.raises(ValueError, match="expected 3 levels"):
        dec([semantic()], feats[:2], mf)
    with pytest.raises(ValueError, match=r"features\[1\]"):
        dec([semantic()], [feats[0], torch.randn(2, D + 1, 4, 4), feats[2]], mf)
    with pytest.raises(ValueError, match="groups"):
        dec([semantic(b=3)], feats, mf)
    with pytest.raises(KeyError, match="nope"):
        dec([semantic()], feats, mf).group("nope")
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="query"):
        MultiHeadAttention(dim=D, num_heads=2)(
            torch.randn(1, 2, D + 1), torch.randn(1, 3, D), torch.randn(1, 3, D)
        )
