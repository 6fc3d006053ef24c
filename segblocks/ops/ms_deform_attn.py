"""Multi-scale deformable attention (Deformable DETR), with a reference and a Triton backend.

Each query gathers, for every head, ``P`` bilinear samples from each of ``L`` feature levels at
learned locations and sums them with learned weights. The reference is pure PyTorch
(``grid_sample``); the Triton kernel (forward and backward) runs on CUDA in float16, bfloat16 or
float32, always accumulating in float32, and needs no compile step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from segblocks._validation import check_dtype, check_ndim
from segblocks.ops._dispatch import load_kernels, resolve_backend

__all__ = ["ms_deform_attn", "ms_deform_attn_reference"]

_KERNELS = "segblocks.ops._triton_ms_deform_attn"


def _validate(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> None:
    check_ndim("value", value, 4, "[B, S, heads, Dh]")
    check_dtype("value", value, "floating")
    check_ndim("spatial_shapes", spatial_shapes, 2, "[L, 2]")
    check_ndim("level_start_index", level_start_index, 1, "[L]")
    check_ndim("sampling_locations", sampling_locations, 6, "[B, Q, heads, L, P, 2]")
    check_dtype("sampling_locations", sampling_locations, "floating")
    check_ndim("attention_weights", attention_weights, 5, "[B, Q, heads, L, P]")
    check_dtype("attention_weights", attention_weights, "floating")
    for name, index in (("spatial_shapes", spatial_shapes), ("level_start_index", level_start_index)):
        if index.dtype != torch.int64:
            raise TypeError(f"{name}: expected dtype torch.int64, got {index.dtype}")
    batch, num_pixels, heads, _ = value.shape
    levels = spatial_shapes.shape[0]
    if spatial_shapes.shape[1] != 2:
        raise ValueError(
            f"spatial_shapes: expected shape (L, 2) of (H, W), got {tuple(spatial_shapes.shape)}"
        )
    if level_start_index.shape[0] != levels:
        raise ValueError(
            f"level_start_index: expected shape ({levels},) to match spatial_shapes, "
            f"got {tuple(level_start_index.shape)}"
        )
    loc = sampling_locations.shape
    if loc[0] != batch or loc[2] != heads or loc[3] != levels or loc[5] != 2:
        raise ValueError(
            f"sampling_locations: expected shape ({batch}, Q, {heads}, {levels}, P, 2) "
            f"[B, Q, heads, L, P, 2] from value and spatial_shapes, got {tuple(loc)}"
        )
    if attention_weights.shape != loc[:5]:
        raise ValueError(
            f"attention_weights: expected shape {tuple(loc[:5])} [B, Q, heads, L, P] "
            f"from sampling_locations, got {tuple(attention_weights.shape)}"
        )
    for name, t in (("sampling_locations", sampling_locations), ("attention_weights", attention_weights)):
        if t.device != value.device:
            raise ValueError(f"{name}: expected device {value.device} (value's), got {t.device}")
    for name, t in (("spatial_shapes", spatial_shapes), ("level_start_index", level_start_index)):
        if t.device != value.device and t.device.type != "cpu":
            raise ValueError(f"{name}: expected device {value.device} (value's) or cpu, got {t.device}")
    # Value-dependent checks read the index tensors on the host, so only when they already live
    # there: on an accelerator that would be a device-to-host synchronisation.
    if spatial_shapes.device.type == "cpu" and level_start_index.device.type == "cpu":
        sizes = spatial_shapes.prod(dim=1)
        if bool((spatial_shapes <= 0).any()):
            raise ValueError(f"spatial_shapes: every H and W must be positive, got {spatial_shapes.tolist()}")
        if int(sizes.sum()) != num_pixels:
            raise ValueError(
                f"value: S = {num_pixels} pixels but spatial_shapes {spatial_shapes.tolist()} "
                f"sum to {int(sizes.sum())}"
            )
        expected = torch.cumsum(sizes, 0) - sizes
        if not torch.equal(level_start_index, expected):
            raise ValueError(
                f"level_start_index: expected {expected.tolist()} (exclusive cumsum of H*W), "
                f"got {level_start_index.tolist()}"
            )


def ms_deform_attn_reference(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Pure-PyTorch multi-scale deformable attention (``grid_sample``), without input checks.

    It reads ``spatial_shapes`` and ``level_start_index`` on the host (a synchronisation when they
    live on an accelerator). Computes in the promoted dtype of the three floating inputs.

    Args:
        value: ``[B, S, heads, Dh]``.
        spatial_shapes: ``[L, 2]`` int64 (H, W) per level.
        level_start_index: ``[L]`` int64 offset of each level in ``S``.
        sampling_locations: ``[B, Q, heads, L, P, 2]`` normalised (x, y).
        attention_weights: ``[B, Q, heads, L, P]``.

    Returns:
        ``[B, Q, heads * Dh]`` in value's dtype.
    """
    batch, _, heads, head_dim = value.shape
    queries = sampling_locations.shape[1]
    dtype = torch.promote_types(
        value.dtype, torch.promote_types(sampling_locations.dtype, attention_weights.dtype)
    )
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    starts = [int(s) for s in level_start_index.tolist()]
    # grid_sample wants [-1, 1] coordinates, one image per (batch, head): [B*heads, Q, L, P, 2]
    grid = (2.0 * sampling_locations.to(dtype) - 1.0).transpose(1, 2).flatten(0, 1)
    weights = attention_weights.to(dtype).transpose(1, 2).flatten(0, 1)  # [B*heads, Q, L, P]
    out = value.new_zeros((batch * heads, head_dim, queries), dtype=dtype)
    for level, ((height, width), start) in enumerate(zip(shapes, starts)):
        level_value = value[:, start : start + height * width].to(dtype)  # [B, HW, heads, Dh]
        level_value = level_value.permute(0, 2, 3, 1).reshape(batch * heads, head_dim, height, width)
        sampled = F.grid_sample(
            level_value, grid[:, :, level], mode="bilinear", padding_mode="zeros", align_corners=False
        )  # [B*heads, Dh, Q, P]
        out = out + torch.einsum("ndqp,nqp->ndq", sampled, weights[:, :, level])
    out = out.view(batch, heads, head_dim, queries).permute(0, 3, 1, 2)
    return out.reshape(batch, queries, heads * head_dim).to(value.dtype)


class _MSDeformAttnTriton(torch.autograd.Function):
    """Autograd wrapper around the Triton forward and backward kernels."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        value: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        sampling_locations: Tensor,
        attention_weights: Tensor,
    ) -> Tensor:
        kernels = load_kernels(_KERNELS)
        out = kernels.ms_deform_attn_forward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
        ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        return out.flatten(2)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None, Tensor, Tensor]:
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
        kernels = load_kernels(_KERNELS)
        grad_value, grad_loc, grad_attn = kernels.ms_deform_attn_backward(
            grad_out.contiguous(),
            value,
            spatial_shapes,
            level_start_index,
            sampling_locations,
            attention_weights,
            value_grad=bool(ctx.needs_input_grad[0]),
        )
        return grad_value, None, None, grad_loc, grad_attn


def ms_deform_attn(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
    *,
    backend: str = "auto",
) -> Tensor:
    """Multi-scale deformable attention core: weighted bilinear samples from several feature levels.

    Sampling follows ``grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False)``:
    a location ``(x, y)`` in ``[0, 1]`` maps to pixel ``(x * W - 0.5, y * H - 0.5)`` of its level and
    taps outside the map read zero.

    Backends: ``"triton"`` (fused kernel, forward and backward, float16/bfloat16/float32 with float32
    accumulation; CUDA, or CPU under ``TRITON_INTERPRET=1``), ``"reference"`` (pure PyTorch, any
    device and dtype), ``"auto"`` (Triton on CUDA when available, else the reference).

    ``spatial_shapes`` and ``level_start_index`` may live on the value's device or on the CPU. On the
    CPU they are cross-checked against ``value`` (sum of H*W = S, start offsets); on an accelerator
    that check is skipped because it would synchronise the host. The Triton path makes contiguous
    copies of non-contiguous inputs.

    Args:
        value: ``[B, S, heads, Dh]`` projected values of all levels, S = sum of H_l * W_l.
        spatial_shapes: ``[L, 2]`` int64, (H, W) of each level.
        level_start_index: ``[L]`` int64, offset of each level's first pixel in ``S``.
        sampling_locations: ``[B, Q, heads, L, P, 2]`` normalised (x, y) locations, nominally in
            ``[0, 1]``.
        attention_weights: ``[B, Q, heads, L, P]`` weights of the samples (usually a softmax over
            ``L * P``).
        backend: ``"auto"``, ``"reference"`` or ``"triton"``.

    Returns:
        ``[B, Q, heads * Dh]`` in value's dtype.

    Raises:
        ValueError: on mismatched shapes or devices, inconsistent ``spatial_shapes`` /
            ``level_start_index`` (when on the CPU), or an unknown backend.
        TypeError: on non-tensor inputs, non-floating inputs or non-int64 index tensors.
        BackendUnavailableError: when ``backend="triton"`` cannot run on these inputs.
    """
    _validate(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    chosen = resolve_backend(
        "ms_deform_attn",
        backend,
        device=value.device,
        dtypes=(value.dtype, sampling_locations.dtype, attention_weights.dtype),
        choices=("reference", "triton"),
        fallback="reference",
    )
    if chosen == "reference":
        return ms_deform_attn_reference(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
    out: Tensor = _MSDeformAttnTriton.apply(
        value.contiguous(),
        spatial_shapes.to(value.device).contiguous(),
        level_start_index.to(value.device).contiguous(),
        sampling_locations.contiguous(),
        attention_weights.contiguous(),
    )
    return out
