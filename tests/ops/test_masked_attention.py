"""masked_attention: reference and SDPA backends agree, match nn.MultiheadAttention, clear errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segblocks.ops import BackendUnavailableError, masked_attention, reopen_empty_rows


def make_inputs(
    batch: int,
    heads: int,
    queries: int,
    keys: int,
    head_dim: int,
    *,
    density: float = 0.5,
    empty_rows: int = 1,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, queries, head_dim, generator=gen, dtype=dtype)
    k = torch.randn(batch, heads, keys, head_dim, generator=gen, dtype=dtype)
    v = torch.randn(batch, heads, keys, head_dim, generator=gen, dtype=dtype)
    mask = torch.rand(batch, queries, keys, generator=gen) < density
    mask[:, :empty_rows] = False  # fully masked rows must attend everywhere
    return q, k, v, mask


def grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], seed: int = 1) -> tuple[torch.Tensor, ...]:
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, inputs, upstream)


def test_reopen_empty_rows() -> None:
    mask = torch.tensor([[[True, False, False], [False, False, False]]])
    expected = torch.tensor([[[True, False, False], [True, True, True]]])
    assert torch.equal(reopen_empty_rows(mask), expected)


@settings(max_examples=15, deadline=None)
@given(
    batch=st.integers(1, 2),
    heads=st.integers(1, 3),
    queries=st.integers(1, 9),
    keys=st.integers(1, 40),
    head_dim=st.sampled_from([1, 4, 8, 16]),
    density=st.floats(0.0, 1.0),
    empty_rows=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_reference_and_sdpa_agree_forward_and_backward(
    batch: int, heads: int, queries: int, keys: int, head_dim: int, density: float, empty_rows: int, seed: int
) -> None:
    q, k, v, mask = make_inputs(
        batch, heads, queries, keys, head_dim, density=density, empty_rows=min(empty_rows, queries), seed=seed
    )
    results = []
    for backend in ("reference", "sdpa"):
        inputs = tuple(t.clone().requires_grad_() for t in (q, k, v))
        out = masked_attention(*inputs, mask, backend=backend)
        assert torch.isfinite(out).all()
        results.append((out, *grads(out, inputs)))
    for ref, got in zip(*results):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


def test_fully_masked_row_attends_everywhere() -> None:
    q, k, v, mask = make_inputs(1, 2, 4, 10, 8, empty_rows=2)
    masked = masked_attention(q, k, v, mask)
    unmasked = masked_attention(q, k, v, None)
    torch.testing.assert_close(masked[:, :, :2], unmasked[:, :, :2])
    assert not torch.allclose(masked[:, :, 2:], unmasked[:, :, 2:])


def test_blocked_keys_do_not_influence_the_output() -> None:
    q, k, v, mask = make_inputs(2, 2, 5, 12, 4, empty_rows=0, density=0.6)
    mask[:, :, 0] = True  # every row keeps at least one key
    base = masked_attention(q, k, v, mask, backend="reference")
    blocked = ~mask.any(dim=1)  # keys blocked for every query: [B, K]
    noisy_k = torch.where(blocked[:, None, :, None], torch.randn_like(k) * 10, k)
    noisy_v = torch.where(blocked[:, None, :, None], torch.randn_like(v) * 10, v)
    torch.testing.assert_close(masked_attention(q, noisy_k, noisy_v, mask, backend="reference"), base)


def test_matches_multihead_attention_with_per_head_mask() -> None:
    """The reference decoder's path: nn.MultiheadAttention with a (B*heads, Q, K) True=blocked mask."""
    torch.manual_seed(0)
    dim, heads, batch, queries, keys = 16, 4, 2, 6, 20
    mha = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
    query, memory = torch.randn(batch, queries, dim), torch.randn(batch, keys, dim)
    allowed = torch.rand(batch, queries, keys) < 0.3
    allowed[:, 0] = False
    blocked = ~reopen_empty_rows(allowed)
    expected, _ = mha(query, memory, memory, attn_mask=blocked.repeat_interleave(heads, dim=0))

    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (heads, dim // heads)).transpose(1, 2)

    q = split(torch.nn.functional.linear(query, w_q, b_q))
    k = split(torch.nn.functional.linear(memory, w_k, b_k))
    v = split(torch.nn.functional.linear(memory, w_v, b_v))
    for backend in ("reference", "sdpa"):
        out = masked_attention(q, k, v, allowed, backend=backend).transpose(1, 2).flatten(2)
        torch.testing.assert_close(mha.out_proj(out), expected)


def test_gradcheck_float64() -> None:
    q, k, v, mask = make_inputs(1, 2, 3, 5, 4, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (q, k, v))
    for backend in ("reference", "sdpa"):
        assert torch.autograd.gradcheck(
            lambda a, b, c, name=backend: masked_attention(a, b, c, mask, backend=name), inputs
        )


def test_scale_argument() -> None:
    q, k, v, mask = make_inputs(1, 1, 3, 7, 4)
    torch.testing.assert_close(
        masked_attention(q, k, v, mask, scale=0.25), masked_attention(q / 2, k, v, mask)
    )


def test_low_precision_inputs_keep_their_dtype() -> None:
    q, k, v, mask = make_inputs(1, 2, 3, 9, 8)
    ref = masked_attention(q, k, v, mask, backend="reference")
    for backend in ("reference", "sdpa"):
        out = masked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask, backend=backend)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a: {**a, "q": a["q"][0]}, ValueError, r"q: expected 4 dims"),
        (lambda a: {**a, "k": a["k"][:, :1]}, ValueError, r"k: expected shape \(2, 2, K, 4\)"),
        (lambda a: {**a, "v": a["v"][:, :, :3]}, ValueError, r"v: expected shape"),
        (lambda a: {**a, "v": a["v"].double()}, TypeError, r"v: expected dtype torch.float32"),
        (lambda a: {**a, "mask": a["mask"].float()}, TypeError, r"mask: expected a bool dtype"),
        (lambda a: {**a, "mask": a["mask"][:, :2]}, ValueError, r"mask: expected shape \(2, 3, 5\)"),
        (lambda a: {**a, "mask": a["mask"][:, None]}, ValueError, r"mask: expected 3 dims"),
        (lambda a: {**a, "scale": -1.0}, ValueError, r"scale"),
        (lambda a: {**a, "k": a["k"][:, :, :0], "v": a["v"][:, :, :0], "mask": None}, ValueError, r"K = 0"),
        (lambda a: {**a, "backend": "flash"}, ValueError, r"backend must be one of"),
    ],
)
def test_invalid_inputs_raise_clear_errors(change, error, match) -> None:  # type: ignore[no-untyped-def]
    q, k, v, mask = make_inputs(2, 2, 3, 5, 4)
    with pytest.raises(error, match=match):
        masked_attention(**change({"q": q, "k": k, "v": v, "mask": mask}))


def test_triton_on_cpu_needs_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailableError, match=r"TRITON_INTERPRET=1"):
        masked_attention(*make_inputs(1, 1, 2, 3, 4), backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(BackendUnavailableError, match=r"float64"):
        masked_attention(*make_inputs(1, 1, 2, 3, 4, dtype=torch.float64), backend="triton")
