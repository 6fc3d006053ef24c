"""Host side of the Triton masked cross-attention: grids, key splits, strides, kernel launches.

Imported lazily by :func:`segblocks.ops.masked_attention` (through ``_dispatch.load_kernels``); the
kernels themselves, and the layout of their inputs, are described in
:mod:`segblocks.ops._triton_masked_attention_kernels`.
"""

import functools

import torch
import triton

from segblocks.ops._triton_masked_attention_kernels import (
    LOG2E,
    attn_backward_kernel,
    attn_combine_kernel,
    attn_forward_kernel,
)

__all__ = ["masked_attention_backward", "masked_attention_forward"]


@functools.lru_cache(maxsize=16)
def _num_sms(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (a small constant for the CPU interpreter)."""
    if device.type != "cuda":
        return 4
    return int(torch.cuda.get_device_properties(device).multi_processor_count)


def _split_keys(num_keys: int, block_k: int, base_programs: int, device: torch.device, min_tiles: int) -> int:
    """Keys per split (a multiple of ``block_k``) so that the grid fills about two waves of SMs."""
    tiles = triton.cdiv(num_keys, block_k)
    wanted = triton.cdiv(2 * _num_sms(device), max(base_programs, 1))
    splits = max(1, min(wanted, tiles // min_tiles))
    return triton.cdiv(tiles, splits) * block_k


def _precision(dtype: torch.dtype) -> str:
    """float32 inputs get exact float32 products (no TF32), as the other backends compute."""
    return "ieee" if dtype == torch.float32 else "tf32"


def _strides(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def masked_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    row_open: torch.Tensor,
    scale: float,
    *,
    keys_per_split: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward pass; returns ``out [B, NH, Q, D]`` (contiguous) and ``lse [B*NH, Q]``.

    ``mask`` is ``[B, Q, K]`` uint8 or None; ``row_open`` is ``[B, Q]`` uint8; ``lse`` is the base-2
    log-sum-exp of the scaled scores, kept for the backward pass.
    """
    batch, heads, queries, head_dim = q.shape
    keys = k.shape[2]
    block_q = max(16, min(64, triton.next_power_of_2(queries)))
    block_k = 64 if q.device.type == "cuda" else 32
    block_d = max(16, triton.next_power_of_2(head_dim))
    q_blocks = triton.cdiv(queries, block_q)
    if keys_per_split is None:
        keys_per_split = _split_keys(keys, block_k, q_blocks * batch * heads, q.device, min_tiles=4)
    keys_per_split = triton.cdiv(keys_per_split, block_k) * block_k
    splits = triton.cdiv(keys, keys_per_split)
    out = q.new_empty((batch, heads, queries, head_dim))
    lse = torch.empty((batch * heads, queries), dtype=torch.float32, device=q.device)
    if splits > 1:
        part_acc = torch.empty(
            (splits, batch * heads, queries, head_dim), dtype=torch.float32, device=q.device
        )
        part_max = torch.empty((splits, batch * heads, queries), dtype=torch.float32, device=q.device)
        part_sum = torch.empty_like(part_max)
    else:
        part_acc = part_max = part_sum = lse  # placeholders, never touched
    mask_arg = mask if mask is not None else row_open
    mask_strides = _strides(mask) if mask is not None else (0, 0, 0)
    attn_forward_kernel[(q_blocks, batch * heads, splits)](
        q,
        k,
        v,
        mask_arg,
        row_open,
        out,
        lse,
        part_acc,
        part_max,
        part_sum,
        *_strides(q),
        *_strides(k),
        *_strides(v),
        *mask_strides,
        heads,
        queries,
        keys,
        head_dim,
        keys_per_split,
        scale * LOG2E,
        BLOCK_Q=block_q,
        BLOCK_K=block_k,
        BLOCK_D=block_d,
        HAS_MASK=mask is not None,
        SPLIT=splits > 1,
        DOT_PRECISION=_precision(q.dtype),
        num_warps=4,
        num_stages=2,
    )
    if splits > 1:
        rows = batch * heads * queries
        block_r = 32
        attn_combine_kernel[(triton.cdiv(rows, block_r),)](
            part_acc,
            part_max,
            part_sum,
            out,
            lse,
            rows,
            head_dim,
            splits,
            BLOCK_R=block_r,
            BLOCK_D=block_d,
            num_warps=4,
        )
    return out, lse


def masked_attention_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    row_open: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    *,
    keys_per_split: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward pass; returns ``(grad_q, grad_k, grad_v)`` shaped like q, k, v (contiguous).

    ``grad_out`` and ``out`` are contiguous ``[B, NH, Q, D]``; ``lse`` comes from the forward pass.
    """
    batch, heads, queries, head_dim = q.shape
    keys = k.shape[2]
    block_q = max(16, min(128, triton.next_power_of_2(queries)))
    block_k = 32
    block_d = max(16, triton.next_power_of_2(head_dim))
    if keys_per_split is None:
        keys_per_split = _split_keys(keys, block_k, batch * heads, q.device, min_tiles=2)
    keys_per_split = triton.cdiv(keys_per_split, block_k) * block_k
    splits = triton.cdiv(keys, keys_per_split)
    single_q_block = queries <= block_q
    delta = (grad_out.float() * out.float()).sum(-1)  # [B, NH, Q]: rowsum(dO * O)
    alloc = torch.empty if single_q_block else torch.zeros
    grad_q_part = alloc((splits, batch, heads, queries, head_dim), dtype=torch.float32, device=q.device)
    grad_k = k.new_empty((batch, heads, keys, head_dim))
    grad_v = v.new_empty((batch, heads, keys, head_dim))
    mask_arg = mask if mask is not None else row_open
    mask_strides = _strides(mask) if mask is not None else (0, 0, 0)
    attn_backward_kernel[(splits, batch * heads)](
        q,
        k,
        v,
        mask_arg,
        row_open,
        grad_out,
        lse,
        delta,
        grad_q_part,
        grad_k,
        grad_v,
        *_strides(q),
        *_strides(k),
        *_strides(v),
        *mask_strides,
        heads,
        queries,
        keys,
        head_dim,
        keys_per_split,
        scale * LOG2E,
        scale,
        BLOCK_Q=block_q,
        BLOCK_K=block_k,
        BLOCK_D=block_d,
        HAS_MASK=mask is not None,
        SINGLE_Q_BLOCK=single_q_block,
        DOT_PRECISION=_precision(q.dtype),
        num_warps=4,
        num_stages=2,
    )
    grad_q = grad_q_part[0] if splits == 1 else grad_q_part.sum(0)
    grad_q = (grad_q * scale).to(q.dtype)
    return grad_q, grad_k, grad_v
