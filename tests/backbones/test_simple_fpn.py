"""SimpleFeaturePyramid: shapes for every patch stride, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from segblocks.backbones import SimpleFeaturePyramid


@pytest.mark.parametrize("stride", [8, 16, 32, 14])
def test_levels_have_the_right_shapes(stride: int) -> None:
    fpn = SimpleFeaturePyramid(in_channels=12, in_stride=stride, out_channels=8)
    h, w = 224, 448  # divisible by 14 and by 32
    x = torch.randn(2, 12, h // stride, w // stride)
    out = fpn(x, image_size=(h, w))
    assert list(out) == ["res2", "res3", "res4", "res5"]
    for i, s in enumerate((4, 8, 16, 32)):
        assert out[f"res{i + 2}"].shape == (2, 8, h // s, w // s)


def test_gradients_reach_every_parameter() -> None:
    fpn = SimpleFeaturePyramid(in_channels=8, in_stride=16, out_channels=4)
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    sum(v.square().sum() for v in fpn(x).values()).backward()
    assert x.grad is not None
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fpn.parameters())


def test_errors() -> None:
    with pytest.raises(ValueError, match="powers of two"):
        SimpleFeaturePyramid(in_channels=8, in_stride=16, strides=(4, 12))
    with pytest.raises(ValueError, match="positive"):
        SimpleFeaturePyramid(in_channels=0, in_stride=16)
    fpn = SimpleFeaturePyramid(in_channels=8, in_stride=16)
    with pytest.raises(ValueError, match="expected 8 channels"):
        fpn(torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError, match="image_size: required"):
        SimpleFeaturePyramid(in_channels=8, in_stride=14)(torch.randn(1, 8, 4, 4))
