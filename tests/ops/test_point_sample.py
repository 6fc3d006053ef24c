"""point_sample and uncertainty-based point selection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.ops import logit_uncertainty, point_sample, sample_points_by_uncertainty


@settings(max_examples=15, deadline=None)
@given(height=st.integers(1, 7), width=st.integers(1, 7), seed=st.integers(0, 1000))
def test_pixel_centres_read_pixel_values(height: int, width: int, seed: int) -> None:
    features = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed))
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([(xs + 0.5) / width, (ys + 0.5) / height], dim=-1).reshape(1, -1, 2).double()
    sampled = point_sample(features, coords)
    torch.testing.assert_close(sampled, features.flatten(2))


def test_bilinear_between_pixels_and_zero_outside() -> None:
    features = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]]])
    coords = torch.tensor([[[0.5, 0.5], [0.5, 0.25], [-1.0, 0.5], [0.0, 0.25]]])
    # centre = mean of the 4 pixels; (0.5, 0.25) = mean of the top row; far outside = 0;
    # the left border (x = 0) at row 0's centre sits half a pixel outside, so half of pixel 0
    expected = torch.tensor([[[3.0, 1.0, 0.0, 0.0]]])
    torch.testing.assert_close(point_sample(features, coords), expected)


def test_shared_points_and_grid_form() -> None:
    features = torch.randn(3, 2, 5, 6)
    coords = torch.rand(1, 7, 2)
    shared = point_sample(features, coords)
    assert shared.shape == (3, 2, 7)
    torch.testing.assert_close(shared, point_sample(features, coords.expand(3, -1, -1).contiguous()))
    grid = torch.rand(3, 4, 5, 2)
    expected = F.grid_sample(features, 2 * grid - 1, align_corners=False)
    torch.testing.assert_close(point_sample(features, grid), expected)


def test_gradients_reach_features_and_points() -> None:
    features = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    coords = (torch.rand(1, 5, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(point_sample, (features, coords))


@pytest.mark.parametrize(
    ("features", "coords", "error", "match"),
    [
        (torch.zeros(2, 3, 4), torch.zeros(2, 5, 2), ValueError, r"features: expected 4 dims"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, 5, 3), ValueError, r"point_coords: expected \[N, P, 2\]"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(3, 5, 2), ValueError, r"batch size 1 or 2"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.long), torch.zeros(2, 5, 2), TypeError, r"features"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, 5, 2, dtype=torch.long), TypeError, r"point_coords"),
    ],
)
def test_point_sample_errors(features: torch.Tensor, coords: torch.Tensor, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        point_sample(features, coords)


def test_uncertain_points_are_the_most_uncertain_candidates() -> None:
    logits = torch.randn(3, 1, 16, 16) * 4
    num_points, ratio, importance = 20, 3.0, 0.75
    seed = 123
    points = sample_points_by_uncertainty(
        logits,
        num_points,
        oversample_ratio=ratio,
        importance_sample_ratio=importance,
        generator=torch.Generator().manual_seed(seed),
    )
    assert points.shape == (3, num_points, 2)
    assert points.min() >= 0 and points.max() <= 1
    # replay the draws: the first 15 points are the 15 most uncertain of the 60 candidates
    candidates = torch.rand(3, int(num_points * ratio), 2, generator=torch.Generator().manual_seed(seed))
    uncertainty = logit_uncertainty(point_sample(logits, candidates))[:, 0]
    kept = int(importance * num_points)
    top = uncertainty.topk(kept, dim=1).values
    chosen = logit_uncertainty(point_sample(logits, points[:, :kept]))[:, 0]
    torch.testing.assert_close(chosen.sort(dim=1).values, top.sort(dim=1).values)
    # and they are more uncertain than the uniform rest on average
    rest = logit_uncertainty(point_sample(logits, points[:, kept:]))[:, 0]
    assert chosen.mean() > rest.mean()


def test_no_importance_gives_uniform_points_and_custom_uncertainty() -> None:
    logits = torch.randn(2, 1, 8, 8)
    points = sample_points_by_uncertainty(logits, 10, importance_sample_ratio=0.0)
    assert points.shape == (2, 10, 2)
    only_uncertain = sample_points_by_uncertainty(
        logits,
        10,
        importance_sample_ratio=1.0,
        uncertainty_fn=lambda x: x,  # highest logits
    )
    values = point_sample(logits, only_uncertain)[:, 0]
    assert values.mean() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"logits": torch.zeros(2, 2, 4, 4)}, r"logits: expected one channel"),
        ({"num_points": 0}, r"num_points"),
        ({"oversample_ratio": 0.5}, r"oversample_ratio"),
        ({"importance_sample_ratio": 1.5}, r"importance_sample_ratio"),
        ({"uncertainty_fn": lambda x: x[:, :, :1]}, r"uncertainty_fn"),
    ],
)
def test_uncertainty_sampling_errors(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    args = {"logits": torch.zeros(2, 1, 4, 4), "num_points": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        sample_points_by_uncertainty(**args)
