"""Matchers for prompt queries: by construction (prompt i <-> target i, the best of k outputs) and
many-to-many (each prompt's k outputs against the targets that contain its point), and the Hungarian
matcher on mask tubes."""

from __future__ import annotations

import pytest
import torch

from segblocks.matchers import ByConstructionMatcher, HungarianMatcher, ManyToManyMatcher
from segblocks.structures import Targets


def squares(*corners: tuple[int, int, int]) -> torch.Tensor:
    """Masks on a 16x16 image, each a square (y, x, side)."""
    masks = torch.zeros(len(corners), 16, 16, dtype=torch.bool)
    for i, (y, x, s) in enumerate(corners):
        masks[i, y : y + s, x : x + s] = True
    return masks


def logits_of(masks: torch.Tensor) -> torch.Tensor:
    return masks.float() * 20 - 10


def test_by_construction_pairs_prompt_i_with_target_i_and_picks_the_best_output() -> None:
    gt = squares((0, 0, 8), (8, 8, 8))
    targets = [Targets(masks=gt, labels=torch.zeros(2, dtype=torch.int64))]
    single = ByConstructionMatcher()(torch.randn(1, 3, 16, 16), None, targets)
    assert single[0][0].tolist() == [0, 1] and single[0][1].tolist() == [0, 1]
    # 3 outputs per prompt: prompt 0's right answer is its 3rd output, prompt 1's its 1st
    outs = torch.stack([gt[1], gt[1], gt[0], gt[1], gt[0], gt[0]])[None]
    best = ByConstructionMatcher(outputs_per_prompt=3, num_points=256)(logits_of(outs), None, targets)
    assert best[0][0].tolist() == [2, 3] and best[0][1].tolist() == [0, 1]
    with pytest.raises(ValueError, match="one target a prompt"):
        ByConstructionMatcher()(torch.randn(1, 1, 16, 16), None, targets)
    with pytest.raises(ValueError, match="outputs for each prompt"):
        ByConstructionMatcher(outputs_per_prompt=2)(torch.randn(1, 3, 16, 16), None, targets)


def test_many_to_many_matches_each_granularity_containing_the_point() -> None:
    # nested masks around the point (4, 4): part, thing, region; a fourth mask elsewhere
    gt = squares((3, 3, 3), (2, 2, 6), (0, 0, 10), (12, 12, 4))
    targets = [Targets(masks=gt, labels=torch.zeros(4, dtype=torch.int64))]
    eligible = [gt[:, 4, 4][None]]  # [P=1, N=4]: the masks containing the point
    assert eligible[0].tolist() == [[True, True, True, False]]
    outs = torch.stack([gt[2], gt[0], gt[1], gt[0]])[None]  # 4 outputs of one prompt
    matcher = ManyToManyMatcher(outputs_per_prompt=4, num_points=512)
    rows, cols = matcher(logits_of(outs), None, targets, eligible=eligible)[0]
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 2, 1: 0, 2: 1}  # output 3 is left unmatched
    # with an IoU gate, a pair only counts when its masks overlap well
    outs[0, 2] = gt[3]
    gated = ManyToManyMatcher(outputs_per_prompt=4, num_points=512, iou_threshold=0.7)
    rows, cols = gated(logits_of(outs), None, targets, eligible=eligible)[0]
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 2, 1: 0}
    with pytest.raises(ValueError, match="eligible"):
        matcher(logits_of(outs), None, targets, eligible=[torch.ones(1, 3, dtype=torch.bool)])


def test_hungarian_matching_of_tubes_sums_over_frames() -> None:
    a, b = squares((0, 0, 8)), squares((8, 8, 8))
    # two tracks: track 0 is `a` then `b`, track 1 `b` then `a`; the predictions are in swapped order
    tracks = torch.stack([torch.cat([a, b]), torch.cat([b, a])])  # [N=2, T=2, 16, 16]
    targets = [Targets(masks=tracks, labels=torch.zeros(2, dtype=torch.int64))]
    preds = logits_of(tracks.flip(0))[None]  # [1, Q=2, T=2, 16, 16]
    rows, cols = HungarianMatcher(num_points=256)(preds, None, targets)[0]
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 1: 0}
