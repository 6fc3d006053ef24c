"""Prompt simulation and the click simulator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from segblocks.data import (
    ShapesWorld,
    coarse_mask,
    first_click,
    jitter_box,
    next_click,
    sample_point,
    sample_polygon,
    sample_scribble,
)


@pytest.fixture(scope="module")
def masks() -> list[np.ndarray]:
    sample = ShapesWorld(split="val").sample(2)
    return [sample.panoptic == s.id for s in sample.segments]


def test_points_lie_inside_the_mask(masks: list[np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    for mask in masks:
        for _ in range(5):
            x, y = sample_point(mask, rng)
            assert mask[y, x]
        x, y = sample_point(mask, rng, mode="center")
        dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        assert mask[y, x] and dist[y, x] == dist.max()


def test_boxes_scribbles_polygons_and_masks(masks: list[np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    for mask in masks:
        h, w = mask.shape
        x1, y1, x2, y2 = jitter_box(mask, rng, jitter=0.1)
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert jitter_box(mask, rng, jitter=0.0) == pytest.approx(
            (
                np.nonzero(mask)[1].min(),
                np.nonzero(mask)[0].min(),
                np.nonzero(mask)[1].max() + 1,
                np.nonzero(mask)[0].max() + 1,
            )
        )
        points, stroke = sample_scribble(mask, rng)
        assert stroke.any() and not (stroke & ~mask).any()
        assert all(mask[int(y), int(x)] for x, y in points)
        vertices, filled = sample_polygon(mask, rng)
        assert 3 <= len(vertices) <= 9 and filled.any()
        assert all(mask[int(y), int(x)] and filled[int(y), int(x)] for x, y in vertices)
        coarse = coarse_mask(mask, rng)
        assert coarse.any() and (coarse & mask).any()


def test_first_click_is_the_centre_most_positive_pixel(masks: list[np.ndarray]) -> None:
    for mask in masks:
        click = first_click(mask)
        assert click.positive and mask[click.y, click.x]


@settings(max_examples=60, deadline=None)
@given(
    gt=arrays(np.bool_, (12, 16)),
    pred=arrays(np.bool_, (12, 16)),
    clicked=arrays(np.bool_, (12, 16)),
)
def test_next_click_is_always_inside_the_error_region(
    gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray
) -> None:
    fn = gt & ~pred & ~clicked
    fp = ~gt & pred & ~clicked
    click = next_click(gt, pred, clicked)
    if not fn.any() and not fp.any():
        assert click is None
        return
    assert click is not None
    assert click.positive == (fn.sum() > fp.sum())
    region = fn if click.positive else fp
    assert region[click.y, click.x]


def test_next_click_targets_the_larger_error_at_its_centre() -> None:
    gt = np.zeros((20, 20), dtype=bool)
    gt[2:18, 2:18] = True
    pred = np.zeros_like(gt)
    pred[2:18, 2:8] = True  # misses the right part: a false-negative block 16 x 10
    click = next_click(gt, pred)
    assert click is not None and click.positive
    # The distance-transform maximum of a 16 x 10 block is the 5-pixel-deep ridge down its middle.
    assert click.x in (12, 13) and 6 <= click.y <= 13
    assert next_click(gt, gt.copy()) is None
    wide = gt.copy()
    wide[:, :] = True  # predicts everything: false positives dominate
    click = next_click(gt, wide)
    assert click is not None and not click.positive and not gt[click.y, click.x]


def test_prompt_errors() -> None:
    rng = np.random.default_rng(0)
    empty = np.zeros((8, 8), dtype=bool)
    with pytest.raises(ValueError, match="mask: the mask is empty"):
        sample_point(empty, rng)
    with pytest.raises(ValueError, match="gt_mask: the mask is empty"):
        first_click(empty)
    with pytest.raises(ValueError, match="expected a \\[H, W\\] bool numpy array, got uint8"):
        sample_scribble(np.ones((8, 8), dtype=np.uint8), rng)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pred_mask: shape"):
        next_click(np.ones((8, 8), dtype=bool), np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="mode: expected"):
        sample_point(np.ones((4, 4), dtype=bool), rng, mode="middle")
    with pytest.raises(ValueError, match="num_vertices"):
        sample_polygon(np.ones((4, 4), dtype=bool), rng, num_vertices=(2, 5))
