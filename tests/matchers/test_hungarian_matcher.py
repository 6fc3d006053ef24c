"""Hungarian matcher and its pairwise costs: parity with per-pair losses, recovery of a known
assignment, empty targets, fp32 under autocast, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.matchers import (
    HungarianMatcher,
    pairwise_class_cost,
    pairwise_dice_cost,
    pairwise_sigmoid_ce_cost,
)
from segblocks.structures import Targets


def test_pairwise_costs_equal_per_pair_losses() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 50), (torch.rand(3, 50) > 0.5).float()
    ce, dice = pairwise_sigmoid_ce_cost(logits, targets), pairwise_dice_cost(logits, targets)
    for i in range(4):
        for j in range(3):
            expected_ce = F.binary_cross_entropy_with_logits(logits[i], targets[j])
            p = logits[i].sigmoid()
            expected_dice = 1 - (2 * (p * targets[j]).sum() + 1) / (p.sum() + targets[j].sum() + 1)
            torch.testing.assert_close(ce[i, j], expected_ce, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(dice[i, j], expected_dice, rtol=1e-5, atol=1e-6)
    labels = torch.tensor([2, 0])
    class_logits = torch.randn(4, 4)
    torch.testing.assert_close(
        pairwise_class_cost(class_logits, labels), -class_logits.softmax(-1)[:, [2, 0]]
    )


def random_targets(n: int, size: int = 16, num_classes: int = 3) -> Targets:
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for k in range(n):  # distinct rectangles
        masks[k, k * 2 : k * 2 + 5, (3 * k) % 10 : (3 * k) % 10 + 6] = True
    return Targets(masks=masks, labels=torch.arange(n) % num_classes)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5), st.permutations(list(range(7))))
def test_matcher_recovers_a_known_assignment(n: int, perm: list[int]) -> None:
    targets = random_targets(n)
    q = 7
    # query perm[k] predicts target k sharply; the other queries predict nothing
    logits = torch.full((1, q, 8, 8), -8.0)
    class_logits = torch.zeros(1, q, 4)
    for k in range(n):
        down = F.interpolate(targets.masks[k][None, None].float(), size=(8, 8), mode="area")[0, 0]
        logits[0, perm[k]] = torch.where(down > 0.5, 8.0, -8.0)
        class_logits[0, perm[k], int(targets.labels[k])] = 5.0
    matcher = HungarianMatcher(num_points=256)
    ((rows, cols),) = matcher(logits, class_logits, [targets], torch.Generator().manual_seed(0))
    assert rows.dtype == cols.dtype == torch.int64 and len(rows) == n
    assert {(int(r), int(c)) for r, c in zip(rows, cols)} == {(perm[k], k) for k in range(n)}


def test_empty_targets_and_fewer_queries_than_targets() -> None:
    matcher = HungarianMatcher(num_points=64)
    empty = Targets(masks=torch.zeros(0, 16, 16, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64))
    out = matcher(torch.randn(2, 3, 8, 8), None, [empty, random_targets(5)])
    assert out[0][0].numel() == 0 and out[0][1].numel() == 0
    assert len(out[1][0]) == 3 and len(set(out[1][1].tolist())) == 3


def test_costs_are_fp32_under_autocast() -> None:
    matcher = HungarianMatcher(num_points=64)
    logits = torch.randn(3, 8, 8, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cost = matcher.cost_matrix(logits, torch.randn(3, 4, dtype=torch.bfloat16), random_targets(2))
        out = matcher(logits[None], None, [random_targets(2)])
    assert cost.dtype == torch.float32
    assert len(out[0][0]) == 2


def test_errors() -> None:
    matcher = HungarianMatcher(num_points=16)
    with pytest.raises(ValueError, match="expected 2 Targets"):
        matcher(torch.randn(2, 3, 8, 8), None, [random_targets(1)])
    with pytest.raises(TypeError, match=r"targets\[0\]"):
        matcher(torch.randn(1, 3, 8, 8), None, [{"masks": None}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="class_logits"):
        matcher(torch.randn(1, 3, 8, 8), torch.randn(1, 4, 4), [random_targets(1)])
    with pytest.raises(ValueError, match="non-finite"):
        matcher(torch.full((1, 3, 8, 8), float("nan")), None, [random_targets(1)])
    with pytest.raises(ValueError, match="num_points"):
        HungarianMatcher(num_points=0)
    with pytest.raises(ValueError, match="points per mask"):
        pairwise_dice_cost(torch.randn(2, 5), torch.randn(3, 4))
