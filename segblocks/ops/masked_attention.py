"""Masked cross-attention (Mask2Former) with one head-shared boolean mask and three backends.

Mask convention (the one of ``torch.nn.functional.scaled_dot_product_attention``): ``mask[b, i, j]``
is **True where query i may attend to key j**. A query whose mask row is entirely False attends to
every key instead (Mask2Former's rule, which avoids a NaN softmax). That rule is evaluated on the
device with ``mask | ~mask.any(-1)``, so no backend synchronises with the host, and the mask is
never copied per head.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from segblocks._validation import check_dtype, check_ndim
from segblocks.ops._dispatch import load_kernels, resolve_backend

__all__ = ["masked_attention", "masked_attention_reference", "reopen_empty_rows"]

_KERNELS = "segblocks.ops._triton_masked_attention"


def reopen_empty_rows(mask: Tensor) -> Tensor:
    """Let every query whose mask row is all False attend everywhere, without a host sync.

    Args:
        mask: ``[..., Q, K]`` bool, True = may attend.

    Returns:
        ``[..., Q, K]`` bool, ``mask`` with its all-False rows set to all-True.
    """
    return mask | ~mask.any(dim=-1, keepdim=True)


def _validate(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None) -> None:
    check_ndim("q", q, 4, "[B, heads, Q, Dh]")
    check_dtype("q", q, "floating")
    check_ndim("k", k, 4, "[B, heads, K, Dh]")
    check_ndim("v", v, 4, "[B, heads, K, Dh]")
    batch, heads, queries, head_dim = q.shape
    if k.shape[0] != batch or k.shape[1] != heads or k.shape[3] != head_dim:
        raise ValueError(
            f"k: expected shape ({batch}, {heads}, K, {head_dim}) [B, heads, K, Dh] from q, "
            f"got {tuple(k.shape)}"
        )
    if v.shape != k.shape:
        raise ValueError(f"v: expected shape {tuple(k.shape)} [B, heads, K, Dh] (k's), got {tuple(v.shape)}")
    if k.shape[2] == 0:
        raise ValueError("k: expected at least one key, got K = 0")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"{name}: expected dtype {q.dtype} (q's), got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name}: expected device {q.device} (q's), got {t.device}")
    if mask is not None:
        check_ndim("mask", mask, 3, "[B, Q, K]")
        check_dtype("mask", mask, "bool")
        if tuple(mask.shape) != (batch, queries, k.shape[2]):
            raise ValueError(
                f"mask: expected shape ({batch}, {queries}, {k.shape[2]}) [B, Q, K] shared by all heads, "
                f"got {tuple(mask.shape)}"
            )
        if mask.device != q.device:
            raise ValueError(f"mask: expected device {q.device} (q's), got {mask.device}")
    if scale is not None and not (isinstance(scale, float | int) and scale > 0):
        raise ValueError(f"scale: expected a positive number or None, got {scale!r}")


def masked_attention_reference(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    """Explicit softmax(QK^T * scale + mask) V in float32 (float64 stays float64), no input checks.

    Args:
        q: ``[B, heads, Q, Dh]``.
        k: ``[B, heads, K, Dh]``.
        v: ``[B, heads, K, Dh]``.
        mask: ``[B, Q, K]`` bool (True = may attend) or None.
        scale: multiplier of the dot products.

    Returns:
        ``[B, heads, Q, Dh]`` in q's dtype.
    """
    dtype = torch.promote_types(q.dtype, torch.float32)
    scores = torch.matmul(q.to(dtype), k.to(dtype).transpose(-1, -2)) * scale  # [B, heads, Q, K]
    if mask is not None:
        scores = scores.masked_fill(~reopen_empty_rows(mask).unsqueeze(1), float("-inf"))
    return torch.matmul(scores.softmax(dim=-1), v.to(dtype)).to(q.dtype)


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    attn_mask = None if mask is None else reopen_empty_rows(mask).unsqueeze(1)  # [B, 1, Q, K]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


class _MaskedAttentionTriton(torch.autograd.Function):
    """Autograd wrapper around the Triton forward and backward kernels."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        scale: float,
        keys_per_split: int | None,
    ) -> Tensor:
        kernels = load_kernels(_KERNELS)
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
        mask_bits: Tensor | None
        if mask is None:
            mask_bits = None
            row_open = torch.zeros(q.shape[0], q.shape[2], dtype=torch.uint8, device=q.device)
        else:
            mask_bits = (
                mask.view(torch.uint8) if mask.stride(-1) == 1 else mask.contiguous().view(torch.uint8)
            )
            row_open = (~mask.any(dim=-1)).view(torch.uint8)
        out, lse = kernels.masked_attention_forward(
            q, k, v, mask_bits, row_open, scale, keys_per_split=keys_per_split
        )
        ctx.save_for_backward(q, k, v, mask_bits, row_open, out, lse)  # type: ignore[arg-type]
        ctx.scale = scale  # type: ignore[attr-defined]
        ctx.keys_per_split = keys_per_split  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None, None]:
        q, k, v, mask_bits, row_open, out, lse = ctx.saved_tensors
        kernels = load_kernels(_KERNELS)
        grad_q, grad_k, grad_v = kernels.masked_attention_backward(
            grad_out.contiguous(),
            q,
            k,
            v,
            mask_bits,
            row_open,
            out,
            lse,
            ctx.scale,
            keys_per_split=ctx.keys_per_split,
        )
        return grad_q, grad_k, grad_v, None, None, None


def _triton(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, keys_per_split: int | None
) -> Tensor:
    out: Tensor = _MaskedAttentionTriton.apply(q, k, v, mask, scale, keys_per_split)
    return out


def masked_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    scale: float | None = None,
    backend: str = "auto",
) -> Tensor:
    """Multi-head attention of ``Q`` queries over ``K`` keys under one boolean mask shared by all heads.

    ``mask[b, i, j]`` is True where query ``i`` may attend to key ``j`` (SDPA's convention); a query
    with an all-False row attends to every key. No backend synchronises with the host, and the mask is
    read in place (broadcast over heads), never copied per head. The projections around the attention
    (in/out linear layers) are the caller's.

    Backends:

    * ``"triton"``: fused flash-style kernel, forward and backward, with the keys split across
      programs so that Mask2Former's ~100 queries still fill the GPU; float16/bfloat16/float32 inputs,
      float32 softmax statistics. CUDA, or CPU under ``TRITON_INTERPRET=1``.
    * ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` with a ``[B, 1, Q, K]`` mask.
    * ``"reference"``: explicit matmul/softmax in float32.
    * ``"auto"``: Triton on CUDA when available, else SDPA.

    Args:
        q: ``[B, heads, Q, Dh]`` queries.
        k: ``[B, heads, K, Dh]`` keys.
        v: ``[B, heads, K, Dh]`` values.
        mask: ``[B, Q, K]`` bool, True = may attend; None attends everywhere.
        scale: multiplier of the dot products; default ``1 / sqrt(Dh)``.
        backend: ``"auto"``, ``"triton"``, ``"sdpa"`` or ``"reference"``.

    Returns:
        ``[B, heads, Q, Dh]`` in q's dtype.

    Raises:
        ValueError: on mismatched shapes or devices, a non-positive scale or an unknown backend.
        TypeError: on non-tensor inputs, a non-floating q, k/v dtypes differing from q's, or a non-bool
            mask.
        BackendUnavailableError: when ``backend="triton"`` cannot run on these inputs.
    """
    _validate(q, k, v, mask, scale)
    sm_scale = float(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    chosen = resolve_backend(
        "masked_attention",
        backend,
        device=q.device,
        dtypes=(q.dtype,),
        choices=("reference", "sdpa", "triton"),
        fallback="sdpa",
    )
    if chosen == "triton":
        return _triton(q, k, v, mask, sm_scale, None)
    if chosen == "sdpa":
        return _sdpa(q, k, v, mask, sm_scale)
    return masked_attention_reference(q, k, v, mask, sm_scale)
