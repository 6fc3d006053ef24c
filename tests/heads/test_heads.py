"""Mask head, closed-set and open-vocabulary class heads, IoU head, mask pooling module."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.heads import MLP, IoUHead, LinearClassHead, MaskHead, MaskPooling, OpenVocabClassHead
from segblocks.ops import mask_pool


def test_mask_head_is_a_dot_product_of_embeddings_and_pixels() -> None:
    torch.manual_seed(0)
    head = MaskHead(dim=8, mask_dim=6)
    q, feats = torch.randn(2, 3, 8), torch.randn(2, 6, 5, 4)
    out = head(q, feats)
    emb = head.embed(q)
    assert out.shape == (2, 3, 5, 4)
    torch.testing.assert_close(out[1, 2, 4, 3], (emb[1, 2] * feats[1, :, 4, 3]).sum())


def test_linear_class_head() -> None:
    head = LinearClassHead(dim=8, num_classes=5)
    assert head(torch.randn(2, 3, 8)).shape == (2, 3, 6)


def test_open_vocab_head_is_a_scaled_cosine() -> None:
    torch.manual_seed(0)
    head = OpenVocabClassHead(dim=8, embed_dim=4, temperature=0.5, void="zero")
    q, text = torch.randn(2, 3, 8), torch.randn(5, 4)
    logits = head(q, text)
    assert logits.shape == (2, 3, 6) and logits.dtype == torch.float32
    expected = 2.0 * F.cosine_similarity(head.proj(q)[:, :, None], text[None, None], dim=-1)
    torch.testing.assert_close(logits[..., :5], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(logits[..., 5], torch.zeros(2, 3)), "zero void prototype"


@settings(max_examples=20, deadline=None)
@given(st.permutations(list(range(6))), st.floats(0.1, 10.0))
def test_open_vocab_head_is_equivariant_to_the_vocabulary(perm: list[int], norm: float) -> None:
    torch.manual_seed(1)
    head = OpenVocabClassHead(dim=8, embed_dim=4)
    q, text = torch.randn(1, 3, 8), torch.randn(6, 4)
    base = head(q, text)
    permuted = head(q, norm * text[perm])  # reorder and rescale the class embeddings
    torch.testing.assert_close(permuted[..., :6], base[..., perm], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(permuted[..., 6], base[..., 6])


def test_open_vocab_linear_void_starts_at_zero_and_is_not_bounded_by_the_temperature() -> None:
    torch.manual_seed(2)
    head = OpenVocabClassHead(dim=8, embed_dim=4, temperature=0.5, void="linear")
    q, text = torch.randn(2, 3, 8), torch.randn(5, 4)
    logits = head(q, text)
    assert torch.equal(logits[..., 5], torch.zeros(2, 3)), "starts as the zero prototype"
    assert head.void_linear is not None and head.void_embedding is None
    with torch.no_grad():
        head.void_linear.bias.fill_(50.0)  # far past the class logits' bound, 1 / temperature = 2
    logits = head(q, text)
    assert torch.equal(logits[..., 5], torch.full((2, 3), 50.0))
    assert float(logits[..., :5].abs().max()) <= 2.0 + 1e-5, "class logits stay scaled cosines"
    logits.sum().backward()
    assert head.void_linear.weight.grad is not None and head.void_linear.weight.grad.abs().sum() > 0


def test_open_vocab_linear_void_can_read_another_input() -> None:
    torch.manual_seed(3)
    head = OpenVocabClassHead(dim=8, embed_dim=4, void="linear", void_dim=6)
    q, text, other = torch.randn(2, 3, 8), torch.randn(5, 4), torch.randn(2, 3, 6, requires_grad=True)
    with torch.no_grad():
        head.void_linear.weight.normal_()
    logits = head(q, text, void_input=other)
    expected = other @ head.void_linear.weight[0] + head.void_linear.bias
    torch.testing.assert_close(logits[..., 5], expected)
    same = head(q.flip(1), text, void_input=other)  # the names follow the queries, the void its input
    torch.testing.assert_close(same[..., 5], logits[..., 5])
    same.sum().backward()
    assert other.grad is not None and other.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="void_input: required"):
        head(q, text)
    with pytest.raises(ValueError, match=r"void_input: expected shape \(2, 3, 6\)"):
        head(q, text, void_input=torch.randn(2, 3, 8))
    with pytest.raises(TypeError, match="void_input"):
        head(q, text, void_input=torch.ones(2, 3, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match="void_input: given, but this head's void is 'learned'"):
        OpenVocabClassHead(dim=8, embed_dim=4)(q, text, void_input=other)
    for bad in ({"void_dim": 0, "void": "linear"}, {"void_dim": 6, "void": "learned"}):
        with pytest.raises(ValueError, match="void_dim: expected a positive width"):
            OpenVocabClassHead(dim=8, embed_dim=4, **bad)


def test_open_vocab_temperature_learnable_or_fixed() -> None:
    learn = OpenVocabClassHead(dim=8, embed_dim=4, temperature=0.07)
    fixed = OpenVocabClassHead(dim=8, embed_dim=4, temperature=0.01, learnable_temperature=False, void="zero")
    assert any(p is learn.log_scale for p in learn.parameters())
    assert all(p is not fixed.log_scale for p in fixed.parameters())
    assert math.isclose(float(fixed.scale), 100.0, rel_tol=1e-5)
    assert math.isclose(float(learn.scale.detach()), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        learn.log_scale.fill_(10.0)
    assert math.isclose(float(learn.scale.detach()), 100.0, rel_tol=1e-5), "clamped at 100 like CLIP"
    out = learn(torch.randn(2, 3, 8), torch.randn(2, 5, 4))  # per-image vocabularies
    out.sum().backward()
    assert learn.void_embedding is not None and learn.void_embedding.grad is not None


def test_iou_head_and_mask_pooling() -> None:
    assert IoUHead(dim=8)(torch.randn(2, 3, 8)).shape == (2, 3)
    feats, masks = torch.randn(2, 4, 6, 6), torch.rand(2, 3, 12, 12) > 0.5
    torch.testing.assert_close(MaskPooling()(feats, masks), mask_pool(feats, masks))


def test_errors() -> None:
    with pytest.raises(ValueError, match="queries: expected width D=8"):
        MaskHead(dim=8, mask_dim=6)(torch.randn(1, 2, 7), torch.randn(1, 6, 3, 3))
    with pytest.raises(ValueError, match="mask_features"):
        MaskHead(dim=8, mask_dim=6)(torch.randn(1, 2, 8), torch.randn(1, 5, 3, 3))
    with pytest.raises(TypeError, match="queries"):
        LinearClassHead(dim=8, num_classes=2)(torch.zeros(1, 2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes"):
        LinearClassHead(dim=8, num_classes=0)
    head = OpenVocabClassHead(dim=8, embed_dim=4)
    with pytest.raises(ValueError, match="text_embeddings"):
        head(torch.randn(1, 2, 8), torch.randn(3, 5))
    with pytest.raises(ValueError, match="empty vocabulary"):
        head(torch.randn(1, 2, 8), torch.randn(0, 4))
    with pytest.raises(ValueError, match="batch"):
        head(torch.randn(1, 2, 8), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="void"):
        OpenVocabClassHead(dim=8, embed_dim=4, void="none")
    with pytest.raises(ValueError, match="temperature"):
        OpenVocabClassHead(dim=8, embed_dim=4, temperature=0.0)
    with pytest.raises(ValueError, match="num_layers"):
        MLP(in_dim=2, hidden_dim=2, out_dim=2, num_layers=0)
    with pytest.raises(ValueError, match="queries"):
        IoUHead(dim=8)(torch.randn(2, 8))
