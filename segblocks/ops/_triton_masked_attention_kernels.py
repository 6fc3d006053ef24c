"""Triton kernels (device code) for masked cross-attention with a head-shared boolean mask.

Launched by :mod:`segblocks.ops._triton_masked_attention` (the host side: grids, splits, strides).

Inputs: q ``[B, NH, Q, D]``, k and v ``[B, NH, K, D]`` (any strides with a unit last stride), an
optional mask ``[B, Q, K]`` (uint8 view of a bool tensor, True = may attend, shared by all heads: the
same mask element is read by every head's program, never copied per head) and ``row_open [B, Q]``
(1 where a query's mask row is empty, so that query attends everywhere). Nothing here synchronises
with the host.

Mask2Former has few queries (Q ~ 100) and many keys (K up to 128 * 128), so a flash-attention grid
over query blocks alone would start only ``B * NH`` programs. Both passes therefore split the keys:
the forward writes a partial (max, sum, accumulator) per split that a small kernel combines; the
backward gives each split its own key range (so dK, dV need no atomics) and a private float32
partial of dQ that is summed afterwards. Scores use base-2 exponentials with log2(e) folded into
the scale; softmax statistics and accumulators are float32.
"""

import triton
import triton.language as tl

__all__ = ["LOG2E", "attn_backward_kernel", "attn_combine_kernel", "attn_forward_kernel"]

LOG2E = 1.4426950408889634
# running-max start: finite, so a key tile with no allowed key gives exp2(-inf - max) = 0, not NaN
_NEG_BIG = tl.constexpr(-1.0e30)


@triton.jit
def _allowed(
    mask_base: tl.tensor,
    stride_mq: int,
    stride_mk: int,
    offs_q: tl.tensor,
    offs_k: tl.tensor,
    q_ok: tl.tensor,
    k_ok: tl.tensor,
    row_open: tl.tensor,
    HAS_MASK: tl.constexpr,
) -> tl.tensor:
    """``[BLOCK_Q, BLOCK_K]`` bool: key exists and (mask allows it or the query's row is empty)."""
    valid = q_ok[:, None] & k_ok[None, :]
    if HAS_MASK:
        ptrs = mask_base + offs_q[:, None] * stride_mq + offs_k[None, :] * stride_mk
        bits = tl.load(ptrs, mask=valid, other=0)
        valid = valid & ((bits != 0) | (row_open[:, None] != 0))
    return valid


@triton.jit
def attn_forward_kernel(
    q_ptr: tl.tensor,
    k_ptr: tl.tensor,
    v_ptr: tl.tensor,
    mask_ptr: tl.tensor,
    open_ptr: tl.tensor,
    out_ptr: tl.tensor,
    lse_ptr: tl.tensor,
    part_acc_ptr: tl.tensor,
    part_max_ptr: tl.tensor,
    part_sum_ptr: tl.tensor,
    stride_qb: int,
    stride_qh: int,
    stride_qm: int,
    stride_kb: int,
    stride_kh: int,
    stride_kn: int,
    stride_vb: int,
    stride_vh: int,
    stride_vn: int,
    stride_mb: int,
    stride_mq: int,
    stride_mk: int,
    num_heads: int,
    num_queries: int,
    num_keys: int,
    head_dim: int,
    keys_per_split: int,
    qk_scale: float,
    BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    HAS_MASK: tl.constexpr,
    SPLIT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
) -> None:
    pid_q = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    num_bh = tl.num_programs(1)
    b = (pid_bh // num_heads).to(tl.int64)
    h = (pid_bh % num_heads).to(tl.int64)
    offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    offs_d = tl.arange(0, BLOCK_D)
    q_ok = offs_q < num_queries
    d_ok = offs_d < head_dim
    q_ptrs = q_ptr + b * stride_qb + h * stride_qh + offs_q[:, None] * stride_qm + offs_d[None, :]
    q = tl.load(q_ptrs, mask=q_ok[:, None] & d_ok[None, :], other=0.0)
    k_base = k_ptr + b * stride_kb + h * stride_kh
    v_base = v_ptr + b * stride_vb + h * stride_vh
    mask_base = mask_ptr + b * stride_mb
    row_open = tl.load(open_ptr + b * num_queries + offs_q, mask=q_ok, other=0)

    m_i = tl.full((BLOCK_Q,), _NEG_BIG, dtype=tl.float32)
    l_i = tl.zeros((BLOCK_Q,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
    k_begin = pid_s * keys_per_split
    k_end = tl.minimum(k_begin + keys_per_split, num_keys)
    for start in range(k_begin, k_end, BLOCK_K):
        offs_k = start + tl.arange(0, BLOCK_K)
        k_ok = offs_k < k_end
        kv_mask = k_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + offs_k[:, None] * stride_kn + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_k[:, None] * stride_vn + offs_d[None, :], mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        allowed = _allowed(mask_base, stride_mq, stride_mk, offs_q, offs_k, q_ok, k_ok, row_open, HAS_MASK)
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new

    row = pid_bh.to(tl.int64) * num_queries + offs_q  # index in [B*NH, Q]
    if SPLIT:
        part_row = pid_s.to(tl.int64) * num_bh * num_queries + row
        tl.store(part_max_ptr + part_row, m_i, mask=q_ok)
        tl.store(part_sum_ptr + part_row, l_i, mask=q_ok)
        acc_ptrs = part_acc_ptr + part_row[:, None] * head_dim + offs_d[None, :]
        tl.store(acc_ptrs, acc, mask=q_ok[:, None] & d_ok[None, :])
    else:
        l_i = tl.where(q_ok, l_i, 1.0)  # rows past Q: keep them finite, they are not stored
        out = acc / l_i[:, None]
        out_ptrs = out_ptr + row[:, None] * head_dim + offs_d[None, :]
        tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=q_ok[:, None] & d_ok[None, :])
        tl.store(lse_ptr + row, m_i + tl.log2(l_i), mask=q_ok)


@triton.jit
def attn_combine_kernel(
    part_acc_ptr: tl.tensor,
    part_max_ptr: tl.tensor,
    part_sum_ptr: tl.tensor,
    out_ptr: tl.tensor,
    lse_ptr: tl.tensor,
    num_rows: int,
    head_dim: int,
    num_splits: int,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
) -> None:
    """Merge the per-split softmax partials of ``BLOCK_R`` rows of the ``[B*NH*Q]`` row space."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_d = tl.arange(0, BLOCK_D)
    r_ok = offs_r < num_rows
    rd_mask = r_ok[:, None] & (offs_d < head_dim)[None, :]
    m_run = tl.full((BLOCK_R,), _NEG_BIG, dtype=tl.float32)
    l_run = tl.zeros((BLOCK_R,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)
    for split in range(0, num_splits):
        base = split * num_rows + offs_r.to(tl.int64)
        m_s = tl.load(part_max_ptr + base, mask=r_ok, other=_NEG_BIG)
        l_s = tl.load(part_sum_ptr + base, mask=r_ok, other=0.0)
        a_s = tl.load(part_acc_ptr + base[:, None] * head_dim + offs_d[None, :], mask=rd_mask, other=0.0)
        m_new = tl.maximum(m_run, m_s)
        alpha = tl.exp2(m_run - m_new)
        beta = tl.exp2(m_s - m_new)
        l_run = l_run * alpha + l_s * beta
        acc = acc * alpha[:, None] + a_s * beta[:, None]
        m_run = m_new
    l_run = tl.where(r_ok, l_run, 1.0)
    out_ptrs = out_ptr + offs_r.to(tl.int64)[:, None] * head_dim + offs_d[None, :]
    tl.store(out_ptrs, (acc / l_run[:, None]).to(out_ptr.dtype.element_ty), mask=rd_mask)
    tl.store(lse_ptr + offs_r, m_run + tl.log2(l_run), mask=r_ok)


@triton.jit
def attn_backward_kernel(
    q_ptr: tl.tensor,
    k_ptr: tl.tensor,
    v_ptr: tl.tensor,
    mask_ptr: tl.tensor,
    open_ptr: tl.tensor,
    grad_out_ptr: tl.tensor,
    lse_ptr: tl.tensor,
    delta_ptr: tl.tensor,
    grad_q_part_ptr: tl.tensor,
    grad_k_ptr: tl.tensor,
    grad_v_ptr: tl.tensor,
    stride_qb: int,
    stride_qh: int,
    stride_qm: int,
    stride_kb: int,
    stride_kh: int,
    stride_kn: int,
    stride_vb: int,
    stride_vh: int,
    stride_vn: int,
    stride_mb: int,
    stride_mq: int,
    stride_mk: int,
    num_heads: int,
    num_queries: int,
    num_keys: int,
    head_dim: int,
    keys_per_split: int,
    qk_scale: float,
    sm_scale: float,
    BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    HAS_MASK: tl.constexpr,
    SINGLE_Q_BLOCK: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
) -> None:
    pid_s = tl.program_id(0)
    pid_bh = tl.program_id(1)
    num_bh = tl.num_programs(1)
    b = (pid_bh // num_heads).to(tl.int64)
    h = (pid_bh % num_heads).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < head_dim
    q_base = q_ptr + b * stride_qb + h * stride_qh
    k_base = k_ptr + b * stride_kb + h * stride_kh
    v_base = v_ptr + b * stride_vb + h * stride_vh
    mask_base = mask_ptr + b * stride_mb
    row_base = pid_bh.to(tl.int64) * num_queries  # rows of this (b, h) in [B*NH, Q] tensors
    dq_base = grad_q_part_ptr + (pid_s.to(tl.int64) * num_bh * num_queries + row_base) * head_dim

    dq_acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)  # used when SINGLE_Q_BLOCK
    k_begin = pid_s * keys_per_split
    k_end = tl.minimum(k_begin + keys_per_split, num_keys)
    for start in range(k_begin, k_end, BLOCK_K):
        offs_k = start + tl.arange(0, BLOCK_K)
        k_ok = offs_k < k_end
        kv_mask = k_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + offs_k[:, None] * stride_kn + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_k[:, None] * stride_vn + offs_d[None, :], mask=kv_mask, other=0.0)
        dk = tl.zeros((BLOCK_K, BLOCK_D), dtype=tl.float32)
        dv = tl.zeros((BLOCK_K, BLOCK_D), dtype=tl.float32)
        for q_start in range(0, num_queries, BLOCK_Q):
            offs_q = q_start + tl.arange(0, BLOCK_Q)
            q_ok = offs_q < num_queries
            qd_mask = q_ok[:, None] & d_ok[None, :]
            q = tl.load(q_base + offs_q[:, None] * stride_qm + offs_d[None, :], mask=qd_mask, other=0.0)
            row = row_base + offs_q
            do = tl.load(grad_out_ptr + row[:, None] * head_dim + offs_d[None, :], mask=qd_mask, other=0.0)
            lse = tl.load(lse_ptr + row, mask=q_ok, other=0.0)
            delta = tl.load(delta_ptr + row, mask=q_ok, other=0.0)
            row_open = tl.load(open_ptr + b * num_queries + offs_q, mask=q_ok, other=0)
            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
            allowed = _allowed(
                mask_base, stride_mq, stride_mk, offs_q, offs_k, q_ok, k_ok, row_open, HAS_MASK
            )
            p = tl.where(allowed, tl.exp2(s - lse[:, None]), 0.0)
            dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=DOT_PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
            ds = p * (dp - delta[:, None])
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=DOT_PRECISION)
            dq_tile = tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)
            if SINGLE_Q_BLOCK:
                dq_acc += dq_tile
            else:
                dq_ptrs = dq_base + offs_q[:, None] * head_dim + offs_d[None, :]
                tl.store(dq_ptrs, tl.load(dq_ptrs, mask=qd_mask, other=0.0) + dq_tile, mask=qd_mask)
        kv_rows = (pid_bh.to(tl.int64) * num_keys + offs_k)[:, None] * head_dim + offs_d[None, :]
        tl.store(grad_k_ptr + kv_rows, (dk * sm_scale).to(grad_k_ptr.dtype.element_ty), mask=kv_mask)
        tl.store(grad_v_ptr + kv_rows, dv.to(grad_v_ptr.dtype.element_ty), mask=kv_mask)
    if SINGLE_Q_BLOCK:
        offs_q = tl.arange(0, BLOCK_Q)
        qd_mask = (offs_q < num_queries)[:, None] & d_ok[None, :]
        tl.store(dq_base + offs_q[:, None] * head_dim + offs_d[None, :], dq_acc, mask=qd_mask)
