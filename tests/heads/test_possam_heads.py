"""PosSAM's blocks on their own: Local Discriminative Pooling, the geometric ensemble and MASE."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.heads import (
    EXPONENT_GRID,
    GeometricEnsemble,
    LocalDiscriminativePooling,
    MaskAwareSelectiveEnsemble,
    OpenVocabClassHead,
    best_exponents,
    check_seen_and_unseen,
    exponent_pairs,
)
from segblocks.ops import mask_pool


def tiny_ldp(**kw: object) -> LocalDiscriminativePooling:
    torch.manual_seed(0)
    args: dict[str, object] = dict(sam_dim=8, clip_dim=6, num_heads=2, ffn_dim=16)
    args.update(kw)
    return LocalDiscriminativePooling(**args)  # type: ignore[arg-type]


def ldp_inputs(b: int = 2, q: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(b, 8, 16, 16, generator=g)
    clip = torch.randn(b, 6, 4, 4, generator=g)
    masks = torch.rand(b, q, 16, 16, generator=g) > 0.5
    return feats, clip, masks


def test_ldp_embeds_and_classifies_every_mask() -> None:
    ldp = tiny_ldp()
    feats, clip, masks = ldp_inputs()
    emb = ldp(feats, clip, masks)
    assert emb.shape == (2, 5, 14) and ldp.dim == 14
    logits = ldp.classify(emb, torch.randn(3, 6))
    assert logits.shape == (2, 5, 4) and logits.dtype == torch.float32
    sam, pooled = ldp.pool(feats, clip, masks)
    torch.testing.assert_close(sam, mask_pool(feats, masks))
    torch.testing.assert_close(pooled, mask_pool(clip, masks))
    assert isinstance(ldp.class_head, OpenVocabClassHead) and ldp.class_head.void_embedding is not None


def test_ldp_empty_masks_stay_finite_and_gradients_reach_every_parameter() -> None:
    ldp = tiny_ldp(num_layers=2)
    feats, clip, masks = ldp_inputs()
    masks[0, 0] = False  # an empty mask pools to zeros
    feats.requires_grad_(True)
    logits = ldp.classify(ldp(feats, clip, masks), torch.randn(3, 6))
    assert torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    missing = [n for n, p in ldp.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert feats.grad is not None and feats.grad.abs().sum() > 0, "class loss reaches the SAM-side features"


@settings(max_examples=10, deadline=None)
@given(st.permutations(list(range(5))))
def test_ldp_is_equivariant_to_the_order_of_the_masks(perm: list[int]) -> None:
    ldp = tiny_ldp()
    feats, clip, masks = ldp_inputs()
    base = ldp(feats, clip, masks)
    permuted = ldp(feats, clip, masks[:, perm])
    torch.testing.assert_close(permuted, base[:, perm], rtol=1e-4, atol=1e-5)


def test_ldp_rejects_bad_inputs_clearly() -> None:
    ldp = tiny_ldp()
    feats, clip, masks = ldp_inputs()
    with pytest.raises(ValueError, match=r"mask_features: expected Ds=8 channels"):
        ldp(feats[:, :4], clip, masks)
    with pytest.raises(ValueError, match=r"clip_features: expected E=6 channels"):
        ldp(feats, clip[:, :2], masks)
    with pytest.raises(ValueError, match="one batch size"):
        ldp(feats, clip[:1], masks)
    with pytest.raises(ValueError, match=r"masks: expected 4 dims"):
        ldp(feats, clip, masks[0])
    with pytest.raises(TypeError, match="mask_features: expected a floating dtype"):
        ldp(feats.to(torch.int64), clip, masks)
    with pytest.raises(ValueError, match="num_heads: 3 does not divide"):
        LocalDiscriminativePooling(sam_dim=8, clip_dim=6, num_heads=3)
    with pytest.raises(ValueError, match="num_layers: expected a positive int"):
        LocalDiscriminativePooling(sam_dim=8, clip_dim=6, num_heads=2, num_layers=0)
    with pytest.raises(ValueError, match="class_head: expected input width 14"):
        LocalDiscriminativePooling(
            sam_dim=8, clip_dim=6, num_heads=2, class_head=OpenVocabClassHead(dim=8, embed_dim=6)
        )


def test_ldp_with_a_clip_residual_starts_as_the_frozen_clip_classifier_and_then_learns() -> None:
    ldp = tiny_ldp(clip_residual=True)
    feats, clip, masks = ldp_inputs()
    masks[0, 0] = False  # an empty mask: no CLIP evidence
    text = torch.randn(3, 6)
    sam, pooled = ldp.pool(feats, clip, masks)
    logits = ldp.classify(ldp.fuse(sam, pooled), text, pooled)
    cosine = torch.nn.functional.normalize(pooled, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    torch.testing.assert_close(logits[0, 1:, :3], ldp.class_head.scale * cosine[0, 1:])
    torch.testing.assert_close(logits[1, :, :3], ldp.class_head.scale * cosine[1])
    plain = tiny_ldp()  # same seed, same weights: the void logit is the fused tokens' alone
    torch.testing.assert_close(logits[..., -1], plain.classify(plain(feats, clip, masks), text)[..., -1])
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(ldp(feats, clip, masks), ldp.fuse(sam, pooled))
    logits.logsumexp(-1).sum().backward()  # the gate and, through the void logit, the head learn
    assert ldp.residual_gate is not None and ldp.residual_gate.grad is not None
    assert ldp.residual_gate.grad.abs() > 0
    assert ldp.class_head.proj.layers[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="prior_gate: given without a prior"):
        ldp.class_head(ldp(feats, clip, masks), text, prior_gate=torch.ones(()))


def test_ldp_refuses_clip_regions_that_do_not_match_how_it_was_built() -> None:
    feats, clip, masks = ldp_inputs()
    text = torch.randn(3, 6)
    residual = tiny_ldp(clip_residual=True)
    sam, pooled = residual.pool(feats, clip, masks)
    emb = residual.fuse(sam, pooled)
    with pytest.raises(ValueError, match="clip_regions: required"):
        residual.classify(emb, text)
    with pytest.raises(ValueError, match=r"prior: expected shape \(2, 5, 6\)"):
        residual.classify(emb, text, pooled[:, :3])
    with pytest.raises(TypeError, match="prior: expected a floating dtype"):
        residual.classify(emb, text, pooled.to(torch.int64))
    with pytest.raises(ValueError, match="clip_regions: given, but"):
        tiny_ldp().classify(emb, text, pooled)


# --------------------------------------------------------------------------------------------------
# ensembles
# --------------------------------------------------------------------------------------------------


def ensemble_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return (
        3 * torch.randn(2, 4, 6, generator=g),
        3 * torch.randn(2, 4, 5, generator=g),
        torch.tensor([True, True, False, True, False]),
    )


def test_geometric_ensemble_is_fc_clips_formula() -> None:
    ldp, clip, seen = ensemble_inputs()
    out = GeometricEnsemble(alpha=0.4, beta=0.8)(ldp, clip, seen)
    probs = out.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4))
    p_in, p_clip = ldp[..., :-1].softmax(-1), clip.softmax(-1)
    a = torch.where(seen, 0.4, 0.8)
    mix = p_in ** (1 - a) * p_clip**a
    void = ldp.softmax(-1)[..., -1:]
    expected = torch.cat([mix / mix.sum(-1, keepdim=True) * (1 - void), void], dim=-1)
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)


def test_geometric_ensemble_limits() -> None:
    ldp, clip, seen = ensemble_inputs()
    in_only = GeometricEnsemble(alpha=0.0, beta=0.0)(ldp, clip, seen).exp()
    torch.testing.assert_close(in_only, ldp.softmax(-1), rtol=1e-5, atol=1e-6)
    clip_only = GeometricEnsemble(alpha=1.0, beta=1.0)(ldp, clip, seen).exp()
    void = ldp.softmax(-1)[..., -1:]
    torch.testing.assert_close(clip_only[..., :-1], clip.softmax(-1) * (1 - void), rtol=1e-5, atol=1e-6)


def test_mase_weights_follow_the_relative_confidence() -> None:
    mase = MaskAwareSelectiveEnsemble(alpha=0.4, beta=0.8)
    seen = torch.tensor([True, False, True])
    equal = torch.tensor([[[4.0, 0.0, 0.0, -9.0]]])  # LDP: confident class 0, void unlikely
    w = mase.clip_weights(equal, equal[..., :-1], seen)
    torch.testing.assert_close(
        w[0, 0], torch.tensor([0.4, 0.8, 0.4]), msg="equal confidence: the fixed ensemble"
    )
    unsure_ldp = torch.zeros(1, 1, 4)
    w_clip = mase.clip_weights(unsure_ldp, torch.tensor([[[8.0, 0.0, 0.0]]]), seen)
    assert (w_clip[0, 0] > torch.tensor([0.4, 0.8, 0.4])).all(), "CLIP more confident: CLIP weighs more"
    w_ldp = mase.clip_weights(torch.tensor([[[8.0, 0.0, 0.0, 0.0]]]), torch.zeros(1, 1, 3), seen)
    assert (w_ldp[0, 0] < torch.tensor([0.4, 0.8, 0.4])).all(), "LDP more confident: LDP weighs more"
    ldp, clip, seen5 = ensemble_inputs()
    w_all = mase.clip_weights(ldp, clip, seen5)
    assert w_all.shape == (2, 4, 5) and bool((w_all >= 0).all() and (w_all <= 1).all())


def test_mase_weights_masks_by_predicted_iou() -> None:
    ldp, clip, seen = ensemble_inputs()
    mase = MaskAwareSelectiveEnsemble()
    iou = torch.tensor([[5.0, 0.0, -5.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    with_iou = mase(ldp, clip, seen, iou).exp()
    without = mase(ldp, clip, seen).exp()
    torch.testing.assert_close(with_iou.sum(-1), torch.ones(2, 4))
    scale = iou.sigmoid().unsqueeze(-1)
    torch.testing.assert_close(with_iou[..., :-1], without[..., :-1] * scale, rtol=1e-5, atol=1e-6)
    no_iou = MaskAwareSelectiveEnsemble(use_iou=False)(ldp, clip, seen, iou)
    torch.testing.assert_close(no_iou, mase(ldp, clip, seen))
    void = ldp.softmax(-1)[..., -1]
    torch.testing.assert_close(without[..., -1], void, rtol=1e-5, atol=1e-6)


def test_ensembles_reject_bad_inputs_clearly() -> None:
    ldp, clip, seen = ensemble_inputs()
    for block in (GeometricEnsemble(), MaskAwareSelectiveEnsemble()):
        with pytest.raises(ValueError, match=r"clip_logits: expected shape \(2, 4, 5\)"):
            block(ldp, clip[..., :3], seen)
        with pytest.raises(ValueError, match="seen: expected 5 flags"):
            block(ldp, clip, seen[:2])
        with pytest.raises(TypeError, match="seen: expected a bool dtype"):
            block(ldp, clip, seen.long())
        with pytest.raises(ValueError, match=r"in_vocab_logits: expected 3 dims"):
            block(ldp[0], clip, seen)
    with pytest.raises(ValueError, match=r"iou_logits: expected shape \(2, 4\)"):
        MaskAwareSelectiveEnsemble()(ldp, clip, seen, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"alpha: expected a value in \[0, 1\]"):
        GeometricEnsemble(alpha=1.5)
    with pytest.raises(ValueError, match=r"beta: expected a value in \[0, 1\]"):
        MaskAwareSelectiveEnsemble(beta=-0.1)


def test_ensembles_under_bf16_inputs_return_float32() -> None:
    ldp, clip, seen = ensemble_inputs()
    out = MaskAwareSelectiveEnsemble()(ldp.bfloat16(), clip.bfloat16(), seen, torch.zeros(2, 4).bfloat16())
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert math.isclose(float(out.exp().sum(-1).mean()), 1.0, rel_tol=1e-4)


def test_masks_without_pixels_keep_the_in_vocabulary_distribution() -> None:
    ldp, clip, seen = ensemble_inputs()
    valid = torch.tensor([[True, False, True, True], [False, True, True, True]])
    for block in (GeometricEnsemble(), MaskAwareSelectiveEnsemble(use_iou=False)):
        out = block(ldp, clip, seen, valid=valid).exp()
        torch.testing.assert_close(out[~valid], ldp.softmax(-1)[~valid], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[valid], block(ldp, clip, seen).exp()[valid])
        with pytest.raises(ValueError, match=r"valid: expected shape \(2, 4\)"):
            block(ldp, clip, seen, valid=valid[:1])
        with pytest.raises(TypeError, match="valid: expected a bool dtype"):
            block(ldp, clip, seen, valid=valid.float())


def test_exponent_grid_and_choosing_rule() -> None:
    pairs = exponent_pairs()
    assert len(pairs) == len(EXPONENT_GRID) ** 2 == 36 and (0.4, 0.8) in pairs and (1.0, 1.0) in pairs
    assert exponent_pairs((0.0, 1)) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    assert best_exponents({(0.0, 0.0): 0.5, (1.0, 1.0): 0.7, (0.4, 0.8): 0.6}) == (1.0, 1.0)  # the highest
    assert best_exponents({(1.0, 1.0): 0.7, (0.6, 1.0): 0.7, (0.0, 0.0): 0.7}) == (
        0.6,
        1.0,
    )  # tie: nearest FC-CLIP
    assert best_exponents({(0.4, 0.8): math.nan, (0.0, 0.0): 0.1}) == (0.0, 0.0)  # NaN ranks last
    with pytest.raises(ValueError, match="grid: expected at least one exponent"):
        exponent_pairs(())
    with pytest.raises(ValueError, match=r"grid: expected exponents in \[0, 1\], got \[1.5\]"):
        exponent_pairs((0.0, 1.5))
    with pytest.raises(ValueError, match="scores: expected at least one"):
        best_exponents({})
    check_seen_and_unseen(torch.tensor([True, False]))
    for flags in ([True, True], [False, False]):
        with pytest.raises(ValueError, match="expected a vocabulary with seen and unseen classes"):
            check_seen_and_unseen(torch.tensor(flags))
