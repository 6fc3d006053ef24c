"""ms_deform_attn reference: grid_sample semantics, gradients in float64, input validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.ops import BackendUnavailableError, ms_deform_attn, ms_deform_attn_reference


def make_inputs(
    shapes: list[tuple[int, int]],
    *,
    batch: int = 2,
    queries: int = 3,
    heads: int = 2,
    head_dim: int = 4,
    points: int = 2,
    dtype: torch.dtype = torch.float64,
    margin: float = 0.2,
    seed: int = 0,
) -> tuple[torch.Tensor, ...]:
    """Random inputs; locations spill ``margin`` outside [0, 1] to exercise zero padding."""
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    level_start_index = torch.cumsum(sizes, 0) - sizes
    levels = len(shapes)
    value = torch.randn(batch, int(sizes.sum()), heads, head_dim, generator=gen, dtype=dtype)
    loc = torch.rand(batch, queries, heads, levels, points, 2, generator=gen, dtype=dtype)
    loc = loc * (1 + 2 * margin) - margin
    weights = torch.rand(batch, queries, heads, levels, points, generator=gen, dtype=dtype)
    return value, spatial_shapes, level_start_index, loc, weights


def naive_msda(value, spatial_shapes, level_start_index, loc, weights):  # type: ignore[no-untyped-def]
    """Scalar loops over every tap: pixel (x * W - 0.5, y * H - 0.5), zeros outside the map."""
    batch, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = loc.shape
    out = torch.zeros(batch, queries, heads, head_dim, dtype=value.dtype)
    for b in range(batch):
        for q in range(queries):
            for h in range(heads):
                for lvl in range(levels):
                    height, width = (int(s) for s in spatial_shapes[lvl])
                    start = int(level_start_index[lvl])
                    for p in range(points):
                        x = float(loc[b, q, h, lvl, p, 0]) * width - 0.5
                        y = float(loc[b, q, h, lvl, p, 1]) * height - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        for yi, xi in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
                            if 0 <= xi < width and 0 <= yi < height:
                                tap = (1 - abs(x - xi)) * (1 - abs(y - yi))
                                pixel = value[b, start + yi * width + xi, h]
                                out[b, q, h] += weights[b, q, h, lvl, p] * tap * pixel
    return out.flatten(2)


def test_reference_matches_scalar_bilinear_definition() -> None:
    inputs = make_inputs([(3, 4), (2, 2), (1, 3)], margin=0.3)
    torch.testing.assert_close(ms_deform_attn(*inputs, backend="reference"), naive_msda(*inputs))


@settings(max_examples=15, deadline=None)
@given(
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    row=st.integers(0, 5),
    col=st.integers(0, 5),
)
def test_sampling_a_pixel_centre_reads_that_pixel(height: int, width: int, row: int, col: int) -> None:
    row, col = row % height, col % width
    value, shapes, starts, loc, weights = make_inputs([(height, width)], batch=1, queries=1, points=1)
    loc[..., 0] = (col + 0.5) / width
    loc[..., 1] = (row + 0.5) / height
    weights.fill_(1.0)
    out = ms_deform_attn(value, shapes, starts, loc, weights)
    torch.testing.assert_close(out, value[:, row * width + col].reshape(1, 1, -1))


def test_points_far_outside_contribute_nothing() -> None:
    value, shapes, starts, loc, weights = make_inputs([(3, 3), (2, 4)])
    loc = torch.where(torch.rand_like(loc) > 0.5, loc + 3.0, loc - 3.0)
    assert torch.count_nonzero(ms_deform_attn(value, shapes, starts, loc, weights)) == 0


def test_reference_gradcheck_float64() -> None:
    value, shapes, starts, loc, weights = make_inputs([(3, 4), (2, 2)], queries=2, points=2)
    value.requires_grad_()
    loc.requires_grad_()
    weights.requires_grad_()

    def fn(v: torch.Tensor, sl: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ms_deform_attn(v, shapes, starts, sl, w, backend="reference")

    assert torch.autograd.gradcheck(fn, (value, loc, weights), eps=1e-6, atol=1e-6)


def test_output_shape_and_dtype_follow_value() -> None:
    value, shapes, starts, loc, weights = make_inputs([(2, 3)], dtype=torch.float32, queries=5, head_dim=3)
    out = ms_deform_attn(value.bfloat16(), shapes, starts, loc, weights)
    assert out.shape == (2, 5, 2 * 3)
    assert out.dtype == torch.bfloat16
    ref = ms_deform_attn_reference(value, shapes, starts, loc, weights)
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a: {**a, "value": a["value"][0]}, ValueError, r"value: expected 4 dims"),
        (lambda a: {**a, "value": a["value"].int()}, TypeError, r"value: expected a floating dtype"),
        (lambda a: {**a, "spatial_shapes": a["spatial_shapes"].int()}, TypeError, r"spatial_shapes: .*int64"),
        (lambda a: {**a, "level_start_index": a["level_start_index"][:1]}, ValueError, r"level_start_index"),
        (lambda a: {**a, "spatial_shapes": a["spatial_shapes"] + 1}, ValueError, r"value: S = 16 pixels"),
        (
            lambda a: {**a, "level_start_index": torch.tensor([0, 5])},
            ValueError,
            r"level_start_index: expected \[0, 12\]",
        ),
        (lambda a: {**a, "sampling_locations": a["sampling_locations"][:, :, :1]}, ValueError, r"heads"),
        (
            lambda a: {**a, "attention_weights": a["attention_weights"][..., :1]},
            ValueError,
            r"attention_weights",
        ),
        (lambda a: {**a, "attention_weights": a["attention_weights"] > 0}, TypeError, r"attention_weights"),
        (lambda a: {**a, "spatial_shapes": [[3, 4], [2, 2]]}, TypeError, r"spatial_shapes: expected a torch"),
    ],
)
def test_invalid_inputs_raise_clear_errors(change, error, match) -> None:  # type: ignore[no-untyped-def]
    value, shapes, starts, loc, weights = make_inputs([(3, 4), (2, 2)])
    args = {
        "value": value,
        "spatial_shapes": shapes,
        "level_start_index": starts,
        "sampling_locations": loc,
        "attention_weights": weights,
    }
    with pytest.raises(error, match=match):
        ms_deform_attn(**change(args))


def test_unknown_and_unavailable_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = make_inputs([(2, 2)], dtype=torch.float32)
    with pytest.raises(ValueError, match=r"backend must be one of"):
        ms_deform_attn(*inputs, backend="cuda")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailableError, match=r"TRITON_INTERPRET=1"):
        ms_deform_attn(*inputs, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(BackendUnavailableError, match=r"float64"):
        ms_deform_attn(*make_inputs([(2, 2)]), backend="triton")
