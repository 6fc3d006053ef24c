"""FourierPositionFeatures: where a pixel is becomes part of its features (linearly readable)."""

from __future__ import annotations

import pytest
import torch

from segblocks.layers import FourierPositionFeatures, fourier_position_code


def _linear_r2(features: torch.Tensor) -> torch.Tensor:
    """R^2 of the best linear read-out of each pixel's normalised (x, y) from ``[C, H, W]`` features."""
    _, h, w = features.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    target = torch.stack([xs.flatten() / (w - 1), ys.flatten() / (h - 1)], 1).double()
    design = torch.cat([features.flatten(1).T.double(), torch.ones(h * w, 1, dtype=torch.double)], 1)
    fit = design @ torch.linalg.lstsq(design, target).solution
    return 1 - ((fit - target) ** 2).sum(0) / ((target - target.mean(0)) ** 2).sum(0)


def test_code_is_bounded_and_tells_pixels_apart() -> None:
    code = fourier_position_code(16, 24, torch.tensor([1.0, 2.0, 4.0]))
    assert code.shape == (12, 16, 24)
    assert code.abs().max() <= 1.0
    flat = code.flatten(1).T  # [H * W, 12]
    assert len(torch.unique(flat.round(decimals=4), dim=0)) == 16 * 24


def test_position_becomes_linearly_readable_at_every_level() -> None:
    torch.manual_seed(0)
    block = FourierPositionFeatures(channels=(32, 64))
    maps = [torch.zeros(2, 32, 32, 32), torch.randn(2, 64, 8, 8) * 0.01]
    out = block(maps)
    assert [tuple(o.shape) for o in out] == [(2, 32, 32, 32), (2, 64, 8, 8)]
    assert bool((_linear_r2(out[0][0]) > 0.9).all())
    assert bool((_linear_r2(out[1][0]) > 0.9).all())
    assert _linear_r2(maps[0][0] + 1e-3 * torch.randn(32, 32, 32)).max() < 0.2  # features without it: nothing


def test_zero_init_starts_unchanged_and_still_learns() -> None:
    block = FourierPositionFeatures(channels=(4,), num_frequencies=2, zero_init=True)
    x = torch.randn(1, 4, 8, 8)
    out = block([x])[0]
    assert torch.equal(out, x)
    (out * torch.randn_like(out)).sum().backward()
    assert block.proj[0].weight.grad is not None and block.proj[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": ()}, "channels"),
        ({"channels": (4, 0)}, "channels"),
        ({"channels": (4,), "num_frequencies": 0}, "num_frequencies"),
        ({"channels": (4,), "max_cycles": 0.5}, "max_cycles"),
    ],
)
def test_construction_errors_name_the_argument(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FourierPositionFeatures(**kwargs)  # type: ignore[arg-type]


def test_call_errors_name_the_argument() -> None:
    block = FourierPositionFeatures(channels=(4, 8))
    with pytest.raises(ValueError, match="maps: expected 2"):
        block([torch.zeros(1, 4, 8, 8)])
    with pytest.raises(ValueError, match=r"maps\[1\]: expected 8 channels"):
        block([torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8)])
    with pytest.raises(ValueError, match=r"maps\[0\]"):
        block([torch.zeros(4, 8, 8), torch.zeros(1, 8, 8, 8)])
    with pytest.raises(ValueError, match="height, width"):
        fourier_position_code(0, 4, torch.ones(1))
