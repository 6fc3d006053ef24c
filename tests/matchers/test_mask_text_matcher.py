"""Mask-text bipartite matching: confident pairs, the multi-scale cost average, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segblocks.matchers import MaskTextMatcher


def test_matches_each_entity_to_its_most_similar_region_and_drops_unconfident_pairs() -> None:
    text = torch.eye(4)[:3]  # 3 entities along axes 0, 1, 2
    regions = torch.tensor([[0.0, 1.0, 0.1, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    m = MaskTextMatcher(min_similarity=0.5)(regions, text)
    assert sorted(zip(m.region_idx.tolist(), m.entity_idx.tolist())) == [(0, 1), (1, 0)]
    assert len(m) == 2 and bool((m.similarity >= 0.5).all())
    everything = MaskTextMatcher(min_similarity=-1.0)(regions, text)
    assert len(everything) == 3  # the hallucinated entity 2 gets the unrelated region 2 without a threshold


def test_multi_scale_costs_are_averaged() -> None:
    text = torch.eye(2)
    # scale 0 confuses the regions, scale 1 gets them right more strongly: the average follows scale 1
    s0 = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
    s1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m = MaskTextMatcher(min_similarity=-1.0)(torch.stack([s0, s1]), text)
    assert m.region_idx.tolist() == [0, 1] and m.entity_idx.tolist() == [0, 1]
    mean_sim = (F.normalize(s0, dim=-1) + s1)[[0, 1], [0, 1]] / 2
    assert torch.allclose(m.similarity, mean_sim)


def test_errors_and_empty_inputs() -> None:
    matcher = MaskTextMatcher()
    with pytest.raises(ValueError, match="no entities"):
        matcher(torch.randn(3, 4), torch.zeros(0, 4))
    with pytest.raises(ValueError, match="entity_embeddings"):
        matcher(torch.randn(3, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match="region_embeddings"):
        matcher(torch.randn(4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="non-finite"):
        matcher(torch.full((2, 4), float("nan")), torch.randn(2, 4))
    with pytest.raises(TypeError, match="region_embeddings"):
        matcher(torch.zeros(2, 4, dtype=torch.int64), torch.randn(2, 4))
    with pytest.raises(ValueError, match="min_similarity"):
        MaskTextMatcher(min_similarity=2.0)
    assert len(matcher(torch.zeros(0, 4), torch.randn(2, 4))) == 0
