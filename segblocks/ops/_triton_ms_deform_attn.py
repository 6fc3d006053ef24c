"""Triton kernels for multi-scale deformable attention (forward and backward).

Imported lazily by :func:`segblocks.ops.ms_deform_attn` (through ``_dispatch.load_kernels``).

Layout (the Deformable-DETR convention, all tensors contiguous):

* value ``[B, S, NH, D]``, S = sum of H_l * W_l;
* spatial_shapes ``[L, 2]`` int64 (H, W) and level_start_index ``[L]`` int64;
* sampling_locations ``[B, Q, NH, L, P, 2]``, normalised (x, y);
* attention_weights ``[B, Q, NH, L, P]``;
* output ``[B, Q, NH, D]``.

One program handles ``BLOCK_Q`` queries of one (batch, head) pair and all ``D`` channels, looping over
levels and points. Bilinear sampling follows ``grid_sample(align_corners=False, padding_mode="zeros")``:
the pixel coordinate is ``x * W - 0.5`` and taps outside the map read zero. Everything is accumulated
in float32; the value gradient is scattered with float32 atomics into a float32 buffer.
"""

import torch
import triton
import triton.language as tl

__all__ = ["ms_deform_attn_backward", "ms_deform_attn_forward"]


@triton.jit
def _tap(
    level_start: tl.tensor,
    yi: tl.tensor,
    xi: tl.tensor,
    height: tl.tensor,
    width: tl.tensor,
    row_stride: int,
    offs_d: tl.tensor,
    q_ok: tl.tensor,
    d_ok: tl.tensor,
) -> tuple[tl.tensor, tl.tensor]:
    """Element offsets ``[BLOCK_Q, BLOCK_D]`` of one bilinear corner and the mask of in-map taps."""
    inside = q_ok & (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    pixel = level_start + (yi * width + xi).to(tl.int64)
    offsets = pixel[:, None] * row_stride + offs_d[None, :]
    return offsets, inside[:, None] & d_ok[None, :]


@triton.jit
def _msda_forward_kernel(
    value_ptr: tl.tensor,
    shapes_ptr: tl.tensor,
    starts_ptr: tl.tensor,
    loc_ptr: tl.tensor,
    attn_ptr: tl.tensor,
    out_ptr: tl.tensor,
    num_pixels: int,
    num_queries: int,
    num_heads: int,
    head_dim: int,
    L: tl.constexpr,
    P: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_D: tl.constexpr,
) -> None:
    pid_q = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // num_heads).to(tl.int64)
    h = pid_bh % num_heads
    offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    offs_d = tl.arange(0, BLOCK_D)
    q_ok = offs_q < num_queries
    d_ok = offs_d < head_dim
    row_stride = num_heads * head_dim
    value_base = value_ptr + b * num_pixels * row_stride + h * head_dim
    # index of (b, q, h) in the [B, Q, NH] grid of queries
    qh = (b * num_queries + offs_q) * num_heads + h
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
    for lvl in range(L):
        height = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
        width = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
        level_start = tl.load(starts_ptr + lvl)
        for pt in range(P):
            idx = qh * (L * P) + lvl * P + pt
            x = tl.load(loc_ptr + 2 * idx, mask=q_ok, other=0.0).to(tl.float32) * width - 0.5
            y = tl.load(loc_ptr + 2 * idx + 1, mask=q_ok, other=0.0).to(tl.float32) * height - 0.5
            a = tl.load(attn_ptr + idx, mask=q_ok, other=0.0).to(tl.float32)
            x0f = tl.floor(x)
            y0f = tl.floor(y)
            lx = x - x0f
            ly = y - y0f
            hx = 1.0 - lx
            hy = 1.0 - ly
            x0 = x0f.to(tl.int32)
            y0 = y0f.to(tl.int32)
            p00, m00 = _tap(level_start, y0, x0, height, width, row_stride, offs_d, q_ok, d_ok)
            p01, m01 = _tap(level_start, y0, x0 + 1, height, width, row_stride, offs_d, q_ok, d_ok)
            p10, m10 = _tap(level_start, y0 + 1, x0, height, width, row_stride, offs_d, q_ok, d_ok)
            p11, m11 = _tap(level_start, y0 + 1, x0 + 1, height, width, row_stride, offs_d, q_ok, d_ok)
            v00 = tl.load(value_base + p00, mask=m00, other=0.0).to(tl.float32)
            v01 = tl.load(value_base + p01, mask=m01, other=0.0).to(tl.float32)
            v10 = tl.load(value_base + p10, mask=m10, other=0.0).to(tl.float32)
            v11 = tl.load(value_base + p11, mask=m11, other=0.0).to(tl.float32)
            sample = (hy * hx)[:, None] * v00 + (hy * lx)[:, None] * v01
            sample += (ly * hx)[:, None] * v10 + (ly * lx)[:, None] * v11
            acc += a[:, None] * sample
    out_ptrs = out_ptr + qh[:, None] * head_dim + offs_d[None, :]
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=q_ok[:, None] & d_ok[None, :])


@triton.jit
def _msda_backward_kernel(
    value_ptr: tl.tensor,
    shapes_ptr: tl.tensor,
    starts_ptr: tl.tensor,
    loc_ptr: tl.tensor,
    attn_ptr: tl.tensor,
    grad_out_ptr: tl.tensor,
    grad_value_ptr: tl.tensor,
    grad_loc_ptr: tl.tensor,
    grad_attn_ptr: tl.tensor,
    num_pixels: int,
    num_queries: int,
    num_heads: int,
    head_dim: int,
    L: tl.constexpr,
    P: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_D: tl.constexpr,
    VALUE_GRAD: tl.constexpr,
) -> None:
    pid_q = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // num_heads).to(tl.int64)
    h = pid_bh % num_heads
    offs_q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    offs_d = tl.arange(0, BLOCK_D)
    q_ok = offs_q < num_queries
    d_ok = offs_d < head_dim
    row_stride = num_heads * head_dim
    value_base = value_ptr + b * num_pixels * row_stride + h * head_dim
    grad_value_base = grad_value_ptr + b * num_pixels * row_stride + h * head_dim
    qh = (b * num_queries + offs_q) * num_heads + h
    g_mask = q_ok[:, None] & d_ok[None, :]
    g = tl.load(grad_out_ptr + qh[:, None] * head_dim + offs_d[None, :], mask=g_mask, other=0.0)
    g = g.to(tl.float32)
    for lvl in range(L):
        height = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
        width = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
        level_start = tl.load(starts_ptr + lvl)
        for pt in range(P):
            idx = qh * (L * P) + lvl * P + pt
            x = tl.load(loc_ptr + 2 * idx, mask=q_ok, other=0.0).to(tl.float32) * width - 0.5
            y = tl.load(loc_ptr + 2 * idx + 1, mask=q_ok, other=0.0).to(tl.float32) * height - 0.5
            a = tl.load(attn_ptr + idx, mask=q_ok, other=0.0).to(tl.float32)
            x0f = tl.floor(x)
            y0f = tl.floor(y)
            lx = x - x0f
            ly = y - y0f
            hx = 1.0 - lx
            hy = 1.0 - ly
            x0 = x0f.to(tl.int32)
            y0 = y0f.to(tl.int32)
            p00, m00 = _tap(level_start, y0, x0, height, width, row_stride, offs_d, q_ok, d_ok)
            p01, m01 = _tap(level_start, y0, x0 + 1, height, width, row_stride, offs_d, q_ok, d_ok)
            p10, m10 = _tap(level_start, y0 + 1, x0, height, width, row_stride, offs_d, q_ok, d_ok)
            p11, m11 = _tap(level_start, y0 + 1, x0 + 1, height, width, row_stride, offs_d, q_ok, d_ok)
            # <grad_out, value at corner> per query: enough for the weight and location gradients
            gv00 = tl.sum(g * tl.load(value_base + p00, mask=m00, other=0.0).to(tl.float32), axis=1)
            gv01 = tl.sum(g * tl.load(value_base + p01, mask=m01, other=0.0).to(tl.float32), axis=1)
            gv10 = tl.sum(g * tl.load(value_base + p10, mask=m10, other=0.0).to(tl.float32), axis=1)
            gv11 = tl.sum(g * tl.load(value_base + p11, mask=m11, other=0.0).to(tl.float32), axis=1)
            grad_a = hy * hx * gv00 + hy * lx * gv01 + ly * hx * gv10 + ly * lx * gv11
            grad_x = a * (hy * (gv01 - gv00) + ly * (gv11 - gv10)) * width
            grad_y = a * (hx * (gv10 - gv00) + lx * (gv11 - gv01)) * height
            tl.store(grad_attn_ptr + idx, grad_a.to(grad_attn_ptr.dtype.element_ty), mask=q_ok)
            tl.store(grad_loc_ptr + 2 * idx, grad_x.to(grad_loc_ptr.dtype.element_ty), mask=q_ok)
            tl.store(grad_loc_ptr + 2 * idx + 1, grad_y.to(grad_loc_ptr.dtype.element_ty), mask=q_ok)
            if VALUE_GRAD:
                ag = a[:, None] * g
                tl.atomic_add(grad_value_base + p00, (hy * hx)[:, None] * ag, mask=m00, sem="relaxed")
                tl.atomic_add(grad_value_base + p01, (hy * lx)[:, None] * ag, mask=m01, sem="relaxed")
                tl.atomic_add(grad_value_base + p10, (ly * hx)[:, None] * ag, mask=m10, sem="relaxed")
                tl.atomic_add(grad_value_base + p11, (ly * lx)[:, None] * ag, mask=m11, sem="relaxed")


def _launch_config(num_queries: int, head_dim: int) -> tuple[int, int, int]:
    """Return ``(BLOCK_Q, BLOCK_D, num_warps)`` for a problem size."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    block_q = max(16, min(64, triton.next_power_of_2(num_queries), 4096 // block_d))
    num_warps = 4 if block_q * block_d >= 2048 else 2
    return block_q, block_d, num_warps


def ms_deform_attn_forward(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Launch the forward kernel on contiguous inputs; returns ``[B, Q, NH, D]`` in value's dtype."""
    batch, num_pixels, num_heads, head_dim = value.shape
    num_queries, num_levels, num_points = sampling_locations.shape[1], *sampling_locations.shape[3:5]
    out = value.new_empty((batch, num_queries, num_heads, head_dim))
    block_q, block_d, num_warps = _launch_config(num_queries, head_dim)
    grid = (triton.cdiv(num_queries, block_q), batch * num_heads)
    _msda_forward_kernel[grid](
        value,
        spatial_shapes,
        level_start_index,
        sampling_locations,
        attention_weights,
        out,
        num_pixels,
        num_queries,
        num_heads,
        head_dim,
        L=num_levels,
        P=num_points,
        BLOCK_Q=block_q,
        BLOCK_D=block_d,
        num_warps=num_warps,
    )
    return out


def ms_deform_attn_backward(
    grad_out: torch.Tensor,
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    *,
    value_grad: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Launch the backward kernel; returns (grad_value or None, grad_locations, grad_weights).

    ``grad_out`` is ``[B, Q, NH, D]`` contiguous. The value gradient is accumulated in float32 and cast
    to value's dtype at the end; the other two gradients are written once each, in their input dtype.
    """
    batch, num_pixels, num_heads, head_dim = value.shape
    num_queries, num_levels, num_points = sampling_locations.shape[1], *sampling_locations.shape[3:5]
    grad_value = torch.zeros(value.shape, dtype=torch.float32, device=value.device) if value_grad else None
    grad_loc = torch.empty_like(sampling_locations)
    grad_attn = torch.empty_like(attention_weights)
    block_q, block_d, num_warps = _launch_config(num_queries, head_dim)
    grid = (triton.cdiv(num_queries, block_q), batch * num_heads)
    _msda_backward_kernel[grid](
        value,
        spatial_shapes,
        level_start_index,
        sampling_locations,
        attention_weights,
        grad_out,
        grad_value if grad_value is not None else grad_loc,  # a placeholder pointer, never written
        grad_loc,
        grad_attn,
        num_pixels,
        num_queries,
        num_heads,
        head_dim,
        L=num_levels,
        P=num_points,
        BLOCK_Q=block_q,
        BLOCK_D=block_d,
        VALUE_GRAD=grad_value is not None,
        num_warps=num_warps,
    )
    if grad_value is not None and grad_value.dtype != value.dtype:
        grad_value = grad_value.to(value.dtype)
    return grad_value, grad_loc, grad_attn
