"""Benchmark segblocks.ops against the references, printing one JSON document.

Shapes are Mask2Former's at 1024 x 1024 (``--device cuda``, the default with a GPU):

* ``ms_deform_attn``: the pixel decoder's encoder self-attention on levels 128x128, 64x64, 32x32
  (strides 8/16/32, S = Q = 21,504 tokens), 256 channels in 8 heads of 32, 4 points, batch 2.
* ``masked_attention``: the transformer decoder's masked cross-attention, 100 queries over each level
  (K = 16,384 / 4,096 / 1,024), 8 heads, model dim 256, batch 2.
  - ``layer``: the whole cross-attention block from embeddings and mask logits to the output:
    the baseline is the reference decoder's path (``sigmoid < 0.5`` mask repeated per head, fully
    masked rows reopened with single-argument ``torch.where``, ``nn.MultiheadAttention`` with its
    default ``need_weights=True``); ours uses the same weights with ``masked_attention``.
  - ``op``: the attention core alone on projected q/k/v, per backend, against the reference backend.

For each case (one JSON line per backend): ``fwd_ms`` (under ``no_grad``) and ``fwd_bwd_ms`` (median
of CUDA-event timings on GPU, best of N on CPU), ``*_peak_mib`` (peak extra memory, CUDA only),
``*_syncs`` (host syncs per call, CUDA only, counted with ``torch.cuda.set_sync_debug_mode("warn")``),
``*_speedup`` over the baseline measured in the same run, and ``max_abs_diff`` to the baseline's
output. On CPU (``--device cpu``, the default without CUDA) the shapes shrink (levels 16/8/4,
batch 1, float32) so a run takes seconds, and the CUDA-only fields are left out.

``--check-compile`` instead compiles every Triton kernel ahead of time for an sm_90 GPU (H100/H200),
which needs no GPU, and reports shared memory and register spills.

Usage: ``python bench/ops.py [--device cpu|cuda] [--dtype bfloat16|float16|float32] [--reps N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from segblocks.ops import BackendUnavailableError, masked_attention, ms_deform_attn
from segblocks.ops._dispatch import resolve_backend

Result = dict[str, Any]


# ----------------------------------------------------------------------------------------------------
# measurement helpers
# ----------------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, reps: int, warmup: int) -> Result:
    """Time of ``fn`` in ms (CUDA: median; CPU: best of ``reps``) and, on CUDA, its peak extra memory."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    peak_mib = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for start, end in zip(starts, ends):
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
        peak_mib = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    # CUDA: median of event timings; CPU: best of N, which shrugs off other processes on a shared machine
    ms = statistics.median(times) if device.type == "cuda" else min(times)
    return {"ms": round(ms, 4), "peak_mib": None if peak_mib is None else round(peak_mib, 2)}


def count_host_syncs(fn: Callable[[], object], device: torch.device) -> int | None:
    """Synchronising CUDA calls made by one call of ``fn`` (None on CPU, where it is meaningless)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronize(device)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def bench_case(
    forward: Callable[[], torch.Tensor],
    inputs: list[torch.Tensor],
    device: torch.device,
    reps: int,
    warmup: int,
) -> tuple[Result, torch.Tensor]:
    """Forward (no_grad) and forward+backward timings of one implementation, and its output."""

    def fwd() -> torch.Tensor:
        with torch.no_grad():
            return forward()

    with torch.enable_grad():
        out = forward()
    grad_out = torch.randn_like(out)

    def fwd_bwd() -> tuple[torch.Tensor, ...]:
        result = forward()
        return torch.autograd.grad(result, inputs, grad_out)

    forward_time = timed(fwd, device, reps, warmup)
    backward_time = timed(fwd_bwd, device, reps, warmup)
    result: Result = {
        "fwd_ms": forward_time["ms"],
        "fwd_bwd_ms": backward_time["ms"],
        "fwd_peak_mib": forward_time["peak_mib"],
        "fwd_bwd_peak_mib": backward_time["peak_mib"],
        "fwd_syncs": count_host_syncs(fwd, device),
        "fwd_bwd_syncs": count_host_syncs(fwd_bwd, device),
    }
    return {key: val for key, val in result.items() if val is not None}, out.detach()


def add_ratios(results: dict[str, Result], baseline: str, outputs: dict[str, torch.Tensor]) -> None:
    """Speedups over ``baseline`` and max abs output difference, measured in this run."""
    base = results[baseline]
    for name, res in results.items():
        if "skipped" in res:
            continue
        res["fwd_speedup"] = round(base["fwd_ms"] / res["fwd_ms"], 3)
        res["fwd_bwd_speedup"] = round(base["fwd_bwd_ms"] / res["fwd_bwd_ms"], 3)
        res["max_abs_diff"] = float(
            f"{(outputs[name].float() - outputs[baseline].float()).abs().max().item():.3g}"
        )


def available(
    op: str, backend: str, device: torch.device, dtype: torch.dtype, choices: tuple[str, ...]
) -> str:
    """'' if ``backend`` can run, else the reason."""
    try:
        resolve_backend(op, backend, device=device, dtypes=(dtype,), choices=choices, fallback="reference")
    except BackendUnavailableError as err:
        return str(err)
    return ""


# ----------------------------------------------------------------------------------------------------
# ms_deform_attn
# ----------------------------------------------------------------------------------------------------
def bench_ms_deform_attn(
    cfg: Result, device: torch.device, dtype: torch.dtype, reps: int, warmup: int
) -> Result:
    gen = torch.Generator(device=device).manual_seed(0)
    shapes = torch.tensor(cfg["levels"], dtype=torch.int64, device=device)
    sizes = shapes.prod(1)
    starts = torch.cumsum(sizes, 0) - sizes
    num_pixels = sum(h * w for h, w in cfg["levels"])
    batch, heads, dim, points = cfg["batch"], cfg["heads"], cfg["dim"], cfg["points"]
    head_dim, levels, queries = dim // heads, len(cfg["levels"]), num_pixels  # encoder: every pixel queries

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen, device=device, dtype=torch.float32)

    value = (rand(batch, num_pixels, heads, head_dim) * 2 - 1).to(dtype).requires_grad_()
    loc = (rand(batch, queries, heads, levels, points, 2) * 1.1 - 0.05).to(dtype).requires_grad_()
    weights = rand(batch, queries, heads, levels * points).softmax(-1)  # softmax over L*P, as in the model
    weights = weights.reshape(batch, queries, heads, levels, points).to(dtype).requires_grad_()
    inputs = [value, loc, weights]

    results: dict[str, Result] = {}
    outputs: dict[str, torch.Tensor] = {}
    for backend in ("reference", "triton"):
        reason = available("ms_deform_attn", backend, device, dtype, ("reference", "triton"))
        if reason:
            results[backend] = {"skipped": reason}
            continue

        def forward(name: str = backend) -> torch.Tensor:
            return ms_deform_attn(value, shapes, starts, loc, weights, backend=name)

        results[backend], outputs[backend] = bench_case(forward, inputs, device, reps, warmup)
    add_ratios(results, "reference", outputs)
    return {
        "shape": {
            "value": "x".join(map(str, value.shape)),
            "sampling_locations": "x".join(map(str, loc.shape)),
            "levels": ", ".join(f"{h}x{w}" for h, w in cfg["levels"]),
        },
        "baseline": "reference",
        "backends": results,
    }


# ----------------------------------------------------------------------------------------------------
# masked attention
# ----------------------------------------------------------------------------------------------------
def mask_logits(batch: int, queries: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Blobby mask logits [B, Q, h, w] away from 0, with 10% of the queries predicting nothing."""
    gen = torch.Generator(device=device).manual_seed(1)
    coarse = torch.randn(
        batch, queries, max(1, height // 8), max(1, width // 8), generator=gen, device=device
    )
    logits = F.interpolate(coarse - 0.5, size=(height, width), mode="bilinear", align_corners=False)
    logits = torch.where(logits >= 0, logits + 0.1, logits - 0.1) * 4
    empty = torch.rand(batch, queries, 1, 1, generator=gen, device=device) < 0.1
    return torch.where(empty, -logits.abs() - 0.1, logits)


def reference_decoder_mask(logits: torch.Tensor, heads: int) -> torch.Tensor:
    """The reference decoder's mask: True = blocked, one copy per head, empty rows reopened (syncs)."""
    mask = (logits.sigmoid().flatten(2).unsqueeze(1).repeat(1, heads, 1, 1).flatten(0, 1) < 0.5).bool()
    mask[torch.where(mask.sum(-1) == mask.shape[-1])] = False
    return mask


def bench_masked_attention_level(
    cfg: Result, size: tuple[int, int], device: torch.device, dtype: torch.dtype, reps: int, warmup: int
) -> Result:
    batch, heads, dim, queries = cfg["batch"], cfg["heads"], cfg["dim"], cfg["queries"]
    head_dim, keys = dim // heads, size[0] * size[1]
    gen = torch.Generator(device=device).manual_seed(2)
    mha = torch.nn.MultiheadAttention(dim, heads, dropout=0.0).to(device=device, dtype=dtype)
    params = [mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias]
    query = torch.randn(queries, batch, dim, generator=gen, device=device).to(dtype).requires_grad_()
    memory = torch.randn(keys, batch, dim, generator=gen, device=device).to(dtype).requires_grad_()
    logits = mask_logits(batch, queries, *size, device).to(dtype)

    def split_heads(x: torch.Tensor) -> torch.Tensor:  # [L, B, dim] -> [B, heads, L, head_dim]
        return x.unflatten(-1, (heads, head_dim)).permute(1, 2, 0, 3)

    def layer(backend: str) -> torch.Tensor:
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
        q = split_heads(F.linear(query, w_q, b_q))
        k = split_heads(F.linear(memory, w_k, b_k))
        v = split_heads(F.linear(memory, w_v, b_v))
        allowed = (logits >= 0).flatten(2)  # [B, Q, K], shared by the heads
        out = masked_attention(q, k, v, allowed, backend=backend)  # [B, heads, Q, head_dim]
        return mha.out_proj(out.permute(2, 0, 1, 3).flatten(2))

    def baseline() -> torch.Tensor:
        return mha(query, memory, memory, attn_mask=reference_decoder_mask(logits, heads))[0]

    choices = ("reference", "sdpa", "triton")
    layer_results: dict[str, Result] = {}
    layer_outputs: dict[str, torch.Tensor] = {}
    layer_inputs = [query, memory, *params]
    layer_results["nn_multihead_attention"], layer_outputs["nn_multihead_attention"] = bench_case(
        baseline, layer_inputs, device, reps, warmup
    )
    for backend in ("auto", *choices):
        reason = "" if backend == "auto" else available("masked_attention", backend, device, dtype, choices)
        if reason:
            layer_results[backend] = {"skipped": reason}
            continue
        layer_results[backend], layer_outputs[backend] = bench_case(
            lambda name=backend: layer(name), layer_inputs, device, reps, warmup
        )
    add_ratios(layer_results, "nn_multihead_attention", layer_outputs)

    q = torch.randn(batch, heads, queries, head_dim, generator=gen, device=device).to(dtype).requires_grad_()
    k = torch.randn(batch, heads, keys, head_dim, generator=gen, device=device).to(dtype).requires_grad_()
    v = torch.randn(batch, heads, keys, head_dim, generator=gen, device=device).to(dtype).requires_grad_()
    allowed = (logits >= 0).flatten(2)
    op_results: dict[str, Result] = {}
    op_outputs: dict[str, torch.Tensor] = {}
    for backend in choices:
        reason = available("masked_attention", backend, device, dtype, choices)
        if reason:
            op_results[backend] = {"skipped": reason}
            continue
        op_results[backend], op_outputs[backend] = bench_case(
            lambda name=backend: masked_attention(q, k, v, allowed, backend=name),
            [q, k, v],
            device,
            reps,
            warmup,
        )
    add_ratios(op_results, "reference", op_outputs)
    return {
        "shape": f"B={batch} Q={queries} K={keys} heads={heads} dim={dim}",
        "layer": {"baseline": "nn_multihead_attention", "backends": layer_results},
        "op": {"baseline": "reference", "backends": op_results},
    }


# ----------------------------------------------------------------------------------------------------
# ahead-of-time compile check (no GPU needed)
# ----------------------------------------------------------------------------------------------------
def check_compile(arch: int) -> Result:
    """Compile every kernel for ``sm_{arch}`` in bf16 and fp32 and report resources (no GPU needed)."""
    import inspect
    import os
    import re
    import shutil
    import tempfile

    cache_dir = tempfile.mkdtemp(prefix="segblocks-triton-")
    os.environ["TRITON_CACHE_DIR"] = cache_dir  # an empty cache: honest compile times
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from segblocks.ops import _triton_masked_attention_kernels as ma
    from segblocks.ops import _triton_ms_deform_attn as msda

    target = GPUTarget("cuda", arch, 32)

    def compile_one(kernel: Any, ptrs: dict[str, str], consts: dict[str, Any], warps: int) -> Result:
        signature = {}
        for name in inspect.signature(kernel.fn).parameters:
            if name in consts:
                signature[name] = "constexpr"
            elif name.endswith("_ptr"):
                signature[name] = ptrs.get(name, "*fp32")
            elif name in ("qk_scale", "sm_scale"):
                signature[name] = "fp32"
            else:
                signature[name] = "i32"
        t0 = time.perf_counter()
        compiled = triton.compile(
            ASTSource(kernel, signature, constexprs=consts), target=target, options={"num_warps": warps}
        )
        return {
            "shared_bytes": compiled.metadata.shared,
            "local_memory_ops": len(re.findall(r"\b(?:ld|st)\.local", compiled.asm["ptx"])),
            "compile_s": round(time.perf_counter() - t0, 2),
        }

    report: Result = {"target": f"sm_{arch}"}
    for dt in ("bf16", "fp32"):
        prec = "ieee" if dt == "fp32" else "tf32"
        data = ("value_ptr", "attn_ptr", "out_ptr", "grad_out_ptr", "grad_loc_ptr", "grad_attn_ptr")
        ptrs = {name: f"*{dt}" for name in data} | {
            "shapes_ptr": "*i64",
            "starts_ptr": "*i64",
            "loc_ptr": "*fp32",
        }
        base = {"L": 3, "P": 4, "BLOCK_Q": 64, "BLOCK_D": 32}
        report[f"msda_forward_{dt}"] = compile_one(msda._msda_forward_kernel, ptrs, base, 4)
        report[f"msda_backward_{dt}"] = compile_one(
            msda._msda_backward_kernel, ptrs, {**base, "VALUE_GRAD": True}, 4
        )
        names = ("q_ptr", "k_ptr", "v_ptr", "out_ptr", "grad_out_ptr", "grad_k_ptr", "grad_v_ptr")
        ptrs = {name: f"*{dt}" for name in names} | {"mask_ptr": "*u8", "open_ptr": "*u8"}
        for split in (False, True):
            consts = {"BLOCK_Q": 64, "BLOCK_K": 64, "BLOCK_D": 32, "HAS_MASK": True, "SPLIT": split}
            report[f"attn_forward_split{int(split)}_{dt}"] = compile_one(
                ma.attn_forward_kernel, ptrs, {**consts, "DOT_PRECISION": prec}, 4
            )
        report[f"attn_combine_{dt}"] = compile_one(
            ma.attn_combine_kernel, ptrs, {"BLOCK_R": 32, "BLOCK_D": 32}, 4
        )
        for single in (True, False):
            consts = {
                "BLOCK_Q": 128,
                "BLOCK_K": 32,
                "BLOCK_D": 32,
                "HAS_MASK": True,
                "SINGLE_Q_BLOCK": single,
            }
            report[f"attn_backward_single{int(single)}_{dt}"] = compile_one(
                ma.attn_backward_kernel, ptrs, {**consts, "DOT_PRECISION": prec}, 4
            )
    shutil.rmtree(cache_dir, ignore_errors=True)
    return report


# ----------------------------------------------------------------------------------------------------
def compact_json(obj: Any, indent: int = 0) -> str:
    """JSON with one line per innermost object, so that a report stays readable."""
    if isinstance(obj, dict) and any(isinstance(v, dict) for v in obj.values()):
        pad = " " * (indent + 2)
        items = [f"{pad}{json.dumps(k)}: {compact_json(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    return json.dumps(obj)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default=None)
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (median reported)")
    parser.add_argument("--check-compile", action="store_true", help="only compile the kernels for sm_90")
    args = parser.parse_args()

    if args.check_compile:
        print(compact_json({"check_compile": check_compile(90)}))
        return

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    dtype = getattr(torch, args.dtype or ("bfloat16" if on_gpu else "float32"))
    reps = args.reps or (20 if on_gpu else 5)
    warmup = 3 if on_gpu else 2
    if not on_gpu:
        torch.set_num_threads(1)  # steadier CPU timings on a shared machine
    if on_gpu:
        msda_cfg = {
            "levels": [(128, 128), (64, 64), (32, 32)],
            "batch": 2,
            "heads": 8,
            "dim": 256,
            "points": 4,
        }
        attn_cfg = {"batch": 2, "heads": 8, "dim": 256, "queries": 100}
        attn_levels = [(128, 128), (64, 64), (32, 32)]
    else:  # small enough for a laptop CPU: Mask2Former at 128 x 128, batch 1
        msda_cfg = {"levels": [(16, 16), (8, 8), (4, 4)], "batch": 1, "heads": 8, "dim": 256, "points": 4}
        attn_cfg = {"batch": 1, "heads": 8, "dim": 256, "queries": 100}
        attn_levels = [(16, 16), (8, 8), (4, 4)]

    torch.manual_seed(0)
    t0 = time.perf_counter()
    report: Result = {
        "device": torch.cuda.get_device_name(device) if on_gpu else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "reps": reps,
        "timing": "median of CUDA events" if on_gpu else "best of reps, 1 CPU thread",
        "ms_deform_attn": bench_ms_deform_attn(msda_cfg, device, dtype, reps, warmup),
        "masked_attention": {
            f"{h}x{w}": bench_masked_attention_level(attn_cfg, (h, w), device, dtype, reps, warmup)
            for h, w in attn_levels
        },
    }
    targets: Result = {}
    if on_gpu:  # the targets are set for H100/H200-class GPUs in bfloat16
        msda_triton = report["ms_deform_attn"]["backends"]["triton"]
        if "skipped" not in msda_triton:
            targets["ms_deform_attn_triton_fwd_bwd_speedup_ge_3"] = msda_triton["fwd_bwd_speedup"] >= 3
        for level, res in report["masked_attention"].items():
            auto = res["layer"]["backends"]["auto"]
            targets[f"masked_attention_{level}_fwd_speedup_ge_2"] = auto["fwd_speedup"] >= 2
            targets[f"masked_attention_{level}_fwd_bwd_speedup_ge_2"] = auto["fwd_bwd_speedup"] >= 2
            targets[f"masked_attention_{level}_zero_host_syncs"] = (
                auto["fwd_syncs"] == 0 and auto["fwd_bwd_syncs"] == 0
            )
    else:
        targets["note"] = (
            "targets apply to CUDA GPUs (H100/H200, bfloat16); CPU numbers only check the script"
        )
    report["targets"] = targets
    report["total_s"] = round(time.perf_counter() - t0, 1)
    print(compact_json(report))


if __name__ == "__main__":
    main()
