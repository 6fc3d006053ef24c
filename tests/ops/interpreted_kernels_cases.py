"""Triton kernels under Triton's CPU interpreter, against the references: forward and every gradient.

Not collected by the normal run (the file name does not start with ``test_``): TRITON_INTERPRET=1
must be set before ``triton`` is first imported, so ``test_triton_kernels.py`` runs this file in a
fresh subprocess with the variable set. Direct use:
``TRITON_INTERPRET=1 python -m pytest tests/ops/interpreted_kernels_cases.py``.
Shapes stay tiny: the interpreter runs every program in Python.
"""

from __future__ import annotations

import os
import sys

import pytest

import segblocks.ops

# checked in this fresh process: the library must not import triton before the user can set
# TRITON_INTERPRET (kernel modules load on first use)
TRITON_IMPORTED_BY_SEGBLOCKS = "triton" in sys.modules
del segblocks

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("needs TRITON_INTERPRET=1 before triton is imported", allow_module_level=True)
pytest.importorskip("triton")

import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from segblocks.ops import masked_attention, ms_deform_attn  # noqa: E402
from segblocks.ops.masked_attention import _triton as triton_masked_attention  # noqa: E402

ATOL = 1e-5


def upstream_like(out: torch.Tensor, seed: int = 1) -> torch.Tensor:
    return torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out.dtype)


def msda_inputs(
    shapes: list[tuple[int, int]],
    batch: int,
    queries: int,
    heads: int,
    head_dim: int,
    points: int,
    seed: int = 0,
) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    starts = torch.cumsum(sizes, 0) - sizes
    value = torch.randn(batch, int(sizes.sum()), heads, head_dim, generator=gen)
    loc = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=gen) * 1.4 - 0.2
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=gen)
    return value, spatial_shapes, starts, loc, weights


def msda_outputs(
    backend: str, inputs: tuple[torch.Tensor, ...], value_grad: bool = True
) -> list[torch.Tensor]:
    value, shapes, starts, loc, weights = (t.clone() for t in inputs)
    if backend == "reference":  # the most accurate reference: float64
        value, loc, weights = value.double(), loc.double(), weights.double()
    diff = [loc.requires_grad_(), weights.requires_grad_()]
    if value_grad:
        diff.insert(0, value.requires_grad_())
    out = ms_deform_attn(value, shapes, starts, loc, weights, backend=backend)
    return [out, *torch.autograd.grad(out, diff, upstream_like(out).to(out.dtype))]


@pytest.mark.parametrize(
    ("shapes", "queries", "head_dim", "value_grad"),
    [
        ([(3, 4), (2, 2), (1, 1)], 5, 4, True),  # three levels, head_dim below the block
        ([(4, 3)], 70, 3, True),  # two query blocks
        ([(2, 5), (3, 3)], 4, 16, False),  # no value gradient: the atomics are skipped
    ],
)
def test_ms_deform_attn_triton_matches_reference_fp32(
    shapes: list[tuple[int, int]], queries: int, head_dim: int, value_grad: bool
) -> None:
    inputs = msda_inputs(shapes, batch=2, queries=queries, heads=2, head_dim=head_dim, points=3)
    expected = msda_outputs("reference", inputs, value_grad)
    got = msda_outputs("triton", inputs, value_grad)
    for name, e, g in zip(
        ["out", *(["grad_value"] if value_grad else []), "grad_loc", "grad_w"], expected, got
    ):
        assert g.dtype == torch.float32, name
        assert (g.double() - e).abs().max().item() <= ATOL, name


def test_ms_deform_attn_triton_low_precision_accumulates_in_fp32() -> None:
    """bf16 value with fp32 locations (precise sampling): outputs and gradients keep each input's dtype."""
    value, shapes, starts, loc, weights = msda_inputs([(4, 4), (2, 2)], 1, 6, 2, 8, 4)
    value_bf = value.bfloat16().requires_grad_()
    loc_f = loc.clone().requires_grad_()
    weights_bf = weights.bfloat16().requires_grad_()
    out = ms_deform_attn(value_bf, shapes, starts, loc_f, weights_bf, backend="triton")
    grads = torch.autograd.grad(out, (value_bf, loc_f, weights_bf), upstream_like(out))
    assert out.dtype == torch.bfloat16
    assert [g.dtype for g in grads] == [torch.bfloat16, torch.float32, torch.bfloat16]
    # the reference on the same (rounded) inputs in float64
    ref_in = [value_bf.detach().double().requires_grad_(), loc.double().requires_grad_()]
    ref_in.append(weights_bf.detach().double().requires_grad_())
    ref = ms_deform_attn(ref_in[0], shapes, starts, ref_in[1], ref_in[2], backend="reference")
    ref_grads = torch.autograd.grad(ref, ref_in, upstream_like(out).double())
    torch.testing.assert_close(out.double(), ref, atol=2e-2, rtol=2e-2)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.double(), r, atol=5e-2, rtol=2e-2)


def attention_outputs(
    fn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    inputs = [t.clone().requires_grad_() for t in (q, k, v)]
    out = fn(*inputs, mask)
    return [out, *torch.autograd.grad(out, inputs, upstream_like(out))]


def attention_inputs(
    batch: int, heads: int, queries: int, keys: int, head_dim: int, empty_rows: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, queries, head_dim, generator=gen)
    k = torch.randn(batch, heads, keys, head_dim, generator=gen)
    v = torch.randn(batch, heads, keys, head_dim, generator=gen)
    mask = torch.rand(batch, queries, keys, generator=gen) < 0.4
    mask[:, :empty_rows] = False
    return q, k, v, mask


def check_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, **kw
) -> None:  # type: ignore[no-untyped-def]
    scale = q.shape[-1] ** -0.5
    expected = attention_outputs(
        lambda a, b, c, m: masked_attention(a.double(), b.double(), c.double(), m, backend="reference"),
        q,
        k,
        v,
        mask,
    )
    got = attention_outputs(
        lambda a, b, c, m: triton_masked_attention(a, b, c, m, scale, **kw), q, k, v, mask
    )
    for name, e, g in zip(["out", "grad_q", "grad_k", "grad_v"], expected, got):
        assert g.dtype == torch.float32 and g.shape == e.shape, name
        assert (g.double() - e).abs().max().item() <= ATOL, name


@pytest.mark.parametrize(
    ("shape", "keys_per_split"),
    [
        ((2, 2, 5, 70, 8), None),  # K not a multiple of the key block, one split
        ((2, 2, 5, 70, 8), 32),  # three key splits: partial softmax combine and dQ partial sums
        ((1, 1, 70, 9, 4), None),  # two query blocks in the forward
        ((1, 1, 130, 20, 16), 16),  # several query blocks in the backward (dQ read-modify-write)
    ],
)
def test_masked_attention_triton_matches_reference_fp32(
    shape: tuple[int, int, int, int, int], keys_per_split: int | None
) -> None:
    q, k, v, mask = attention_inputs(*shape, empty_rows=2)
    check_attention(q, k, v, mask, keys_per_split=keys_per_split)


def test_masked_attention_triton_without_mask_and_strided_inputs() -> None:
    q, k, v, _ = attention_inputs(1, 2, 4, 33, 8, empty_rows=0)
    # [B, Q, heads, Dh] projections viewed as [B, heads, Q, Dh], as attention layers produce them
    q_t, k_t, v_t = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    assert not q_t.is_contiguous()
    check_attention(q_t, k_t, v_t, None, keys_per_split=16)


def test_masked_attention_triton_float16_through_the_public_function() -> None:
    """float16 through ``masked_attention(backend="triton")``: float32 statistics keep it accurate.

    (bfloat16 ``tl.dot`` is wrong in Triton 3.9's interpreter, not on GPUs; the benchmark checks bf16.)
    """
    q, k, v, mask = attention_inputs(1, 2, 6, 40, 16, empty_rows=1)
    half = [t.half().requires_grad_() for t in (q, k, v)]
    out = masked_attention(*half, mask, backend="triton")
    grads = torch.autograd.grad(out, half, upstream_like(out))
    exact = [t.detach().double().requires_grad_() for t in half]
    ref = masked_attention(*exact, mask, backend="reference")
    ref_grads = torch.autograd.grad(ref, exact, upstream_like(out).double())
    assert out.dtype == torch.float16 and all(g.dtype == torch.float16 for g in grads)
    torch.testing.assert_close(out.double(), ref, atol=5e-3, rtol=5e-3)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.double(), r, atol=1e-2, rtol=1e-2)


@settings(max_examples=6, deadline=None)
@given(
    queries=st.integers(1, 20),
    keys=st.integers(1, 80),
    head_dim=st.sampled_from([2, 8, 16]),
    empty_rows=st.integers(0, 2),
    keys_per_split=st.sampled_from([None, 32]),
    seed=st.integers(0, 1000),
)
def test_masked_attention_triton_hypothesis(
    queries: int, keys: int, head_dim: int, empty_rows: int, keys_per_split: int | None, seed: int
) -> None:
    q, k, v, mask = attention_inputs(1, 2, queries, keys, head_dim, min(empty_rows, queries), seed)
    check_attention(q, k, v, mask, keys_per_split=keys_per_split)


def test_import_of_segblocks_ops_leaves_triton_unimported() -> None:
    assert not TRITON_IMPORTED_BY_SEGBLOCKS
