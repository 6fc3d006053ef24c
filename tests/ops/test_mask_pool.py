"""mask_pool: averages inside binary and soft masks."""

from __future__ import annotations

import pytest
import torch

from segblocks.ops import mask_pool


def test_binary_mask_averages_its_pixels() -> None:
    features = torch.randn(2, 3, 4, 5)
    masks = torch.rand(2, 6, 4, 5) > 0.5
    pooled = mask_pool(features, masks, eps=0.0)
    for b in range(2):
        for n in range(6):
            if masks[b, n].any():
                expected = features[b][:, masks[b, n]].mean(dim=1)
                torch.testing.assert_close(pooled[b, n], expected)


def test_soft_masks_weight_pixels_and_empty_masks_give_zero() -> None:
    features = torch.arange(4.0).reshape(1, 1, 2, 2)
    masks = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    pooled = mask_pool(features, masks, eps=0.0 + 1e-12)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([(0 * 1 + 3 * 3) / 4.0]))
    torch.testing.assert_close(pooled[0, 1], torch.zeros(1))


def test_masks_at_another_resolution_are_resized() -> None:
    features = torch.randn(1, 2, 8, 8)
    masks = torch.ones(1, 1, 2, 2)
    torch.testing.assert_close(mask_pool(features, masks, eps=0.0)[0, 0], features.mean(dim=(2, 3))[0])


def test_high_resolution_masks_are_area_averaged() -> None:
    # A 3x3-pixel mask inside one 8x8 cell of a 2x2 map: bilinear resizing would sample it away.
    features = torch.arange(4.0).reshape(1, 1, 2, 2)
    masks = torch.zeros(1, 2, 16, 16)
    masks[0, 0, 10:13, 2:5] = 1.0  # inside the bottom-left cell (value 2)
    masks[0, 1, 6:10, 6:10] = 1.0  # a quarter in each cell
    pooled = mask_pool(features, masks, eps=0.0)
    torch.testing.assert_close(pooled[0, :, 0], torch.tensor([2.0, 1.5]))


def test_gradients_reach_features_and_soft_masks() -> None:
    features = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    masks = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(mask_pool, (features, masks))


@pytest.mark.parametrize(
    ("features", "masks", "error", "match"),
    [
        (torch.zeros(2, 3, 4), torch.zeros(2, 1, 4, 4), ValueError, r"features: expected 4 dims"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), ValueError, r"masks: expected 4 dims"),
        (torch.zeros(2, 3, 4, 4), torch.zeros(1, 1, 4, 4), ValueError, r"batch size 1 does not match"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.long), torch.zeros(2, 1, 4, 4), TypeError, r"features"),
    ],
)
def test_errors(features: torch.Tensor, masks: torch.Tensor, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        mask_pool(features, masks)
