"""Region-text alignment losses: Eq. 8's pull and the contrastive form over a set of names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segblocks.losses import ALIGNMENT_LOSSES, region_text_alignment_loss


def unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


def test_pull_is_one_minus_cosine_and_ignores_the_other_texts() -> None:
    torch.manual_seed(0)
    regions, texts = torch.randn(5, 8), unit(4, 8)
    targets = torch.tensor([0, 1, 1, 3, 2])
    loss = region_text_alignment_loss(regions, texts, targets, kind="pull")
    torch.testing.assert_close(loss, 1 - F.cosine_similarity(regions, texts[targets], dim=-1))
    moved = texts.clone()
    moved[[0, 2, 3]] = unit(3, 8)  # rows no region of the second and third pairs points to
    again = region_text_alignment_loss(regions, moved, targets, kind="pull")
    torch.testing.assert_close(again[1:3], loss[1:3])


def test_contrastive_is_cross_entropy_over_the_names_and_pushes_from_the_others() -> None:
    torch.manual_seed(1)
    texts = unit(3, 8)
    regions = (texts[0] + 0.8 * texts[1]).expand(2, 8).clone().requires_grad_(True)
    targets = torch.tensor([0, 0])
    loss = region_text_alignment_loss(regions, texts, targets, kind="contrastive", temperature=0.1)
    expected = F.cross_entropy(F.normalize(regions, dim=-1) @ texts.T / 0.1, targets, reduction="none")
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    step = -regions.grad[0]  # gradient descent direction
    pull = regions.detach().clone().requires_grad_(True)
    region_text_alignment_loss(pull, texts, targets, kind="pull").sum().backward()
    # both move toward the own name; only the contrastive loss moves away from the close other one
    assert float(step @ texts[0]) > 0
    assert float(step @ texts[1]) < float(-pull.grad[0] @ texts[1])
    # a lower temperature sharpens: a region already nearest its own name costs less
    near = (texts[0] + 0.1 * texts[1]).expand(1, 8)
    sharp = region_text_alignment_loss(near, texts, targets[:1], kind="contrastive", temperature=0.05)
    soft = region_text_alignment_loss(near, texts, targets[:1], kind="contrastive", temperature=1.0)
    assert float(sharp) < float(soft)


def test_no_pairs_gives_an_empty_loss() -> None:
    for kind in ALIGNMENT_LOSSES:
        out = region_text_alignment_loss(
            torch.zeros(0, 4), unit(3, 4), torch.zeros(0, dtype=torch.int64), kind=kind
        )
        assert out.shape == (0,)


def test_bad_input_raises_clear_errors() -> None:
    regions, texts, targets = torch.randn(2, 4), unit(3, 4), torch.tensor([0, 2])
    with pytest.raises(ValueError, match="kind"):
        region_text_alignment_loss(regions, texts, targets, kind="triplet")
    with pytest.raises(ValueError, match="temperature"):
        region_text_alignment_loss(regions, texts, targets, kind="contrastive", temperature=0.0)
    with pytest.raises(ValueError, match="regions, texts"):
        region_text_alignment_loss(regions, unit(3, 5), targets)
    with pytest.raises(ValueError, match="regions, texts"):
        region_text_alignment_loss(regions[0], texts, targets)
    with pytest.raises(TypeError, match="targets"):
        region_text_alignment_loss(regions, texts, targets.float())
    with pytest.raises(ValueError, match=r"targets: expected shape \(2,\)"):
        region_text_alignment_loss(regions, texts, targets[:1])
    with pytest.raises(ValueError, match=r"indices in \[0, 3\)"):
        region_text_alignment_loss(regions, texts, torch.tensor([0, 3]))
