"""Benchmark Mask2Former: training-step time and inference throughput, printed as JSON.

* World scale on the CPU (the shapes world, the model card's configuration).
* Paper scale (1024x1024, ResNet-50, 100 queries, 12,544 points) on a GPU when one is present,
  in fp32 and bf16 autocast.

Every measurement is paired with a reference measured in the same run: the same model with the
portable reference ops (``ms_deform_attn`` by ``grid_sample``, masked attention by explicit
matmul/softmax), so the JSON reports ``speedup_vs_reference`` rather than absolute numbers alone.

Usage::

    python bench/mask2former.py                      # world scale on CPU (+ paper scale if CUDA)
    python bench/mask2former.py --scale paper --device cuda --steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig, collate_shapes
from segblocks.structures import Targets
from segblocks.zoo.mask2former import Mask2Former, build_mask2former

NAMES = [c.name for c in CATEGORIES]
THINGS = [c.is_thing for c in CATEGORIES]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device, *, warmup: int, repeats: int) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def make_model(scale: str, backbone: str, backend: str, device: torch.device) -> Mask2Former:
    torch.manual_seed(0)
    model = build_mask2former(
        backbone,
        num_classes=len(NAMES) if scale == "world" else 133,
        class_names=NAMES if scale == "world" else None,
        is_thing=THINGS if scale == "world" else None,
        variant=scale,
        attention_backend=backend if backend == "reference" else "auto",
        deform_backend=backend if backend == "reference" else "auto",
    )
    return model.to(device)


def batch_for(scale: str, size: int, batch: int, device: torch.device) -> tuple[torch.Tensor, list[Targets]]:
    if scale == "world":
        ds = ShapesDataset(ShapesWorldConfig(image_size=(size, size)), split="val", length=batch)
        b = collate_shapes([ds[i] for i in range(batch)])
        return b.images.to(device), [t.to(device) for t in b.targets]
    # paper scale: random images, 20 random box targets per image over 133 classes
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=g)
    targets = []
    for _ in range(batch):
        masks = torch.zeros(20, size, size, dtype=torch.bool)
        for k in range(20):
            y, x = torch.randint(0, size - 128, (2,), generator=g).tolist()
            masks[k, y : y + 128, x : x + 128] = True
        targets.append(Targets(masks=masks, labels=torch.randint(0, 133, (20,), generator=g)))
    return images.to(device), [t.to(device) for t in targets]


def measure_backend(
    model: Mask2Former,
    images: torch.Tensor,
    targets: list[Targets],
    device: torch.device,
    dtype: torch.dtype | None,
    repeats: int,
) -> dict[str, float]:
    """Median training-step time and inference throughput of one model."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def ctx() -> Any:
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def train_step() -> None:
        with ctx():
            losses = model.losses(model(images), targets)
        total = sum(losses.values())
        assert isinstance(total, torch.Tensor)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    def infer() -> None:
        with ctx():
            model.predict(images, tasks=("panoptic",))

    model.train()
    step_s = timed(train_step, device, warmup=2, repeats=repeats)
    model.eval()
    infer_s = timed(infer, device, warmup=1, repeats=repeats)
    entry = {"train_step_ms": 1e3 * step_s, "inference_images_per_s": images.shape[0] / infer_s}
    if device.type == "cuda":
        entry["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return entry


def measure(
    scale: str, backbone: str, size: int, batch: int, device: torch.device, precision: str, repeats: int
) -> dict[str, Any]:
    """Both backends ("auto" and "reference") of one configuration, and their ratios."""
    images, targets = batch_for(scale, size, batch, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    result: dict[str, Any] = {}
    for backend in ("auto", "reference"):
        model = make_model(scale, backbone, backend, device)
        result[backend] = measure_backend(model, images, targets, device, dtype, repeats)
    auto, ref = result["auto"], result["reference"]
    result["train_speedup_vs_reference"] = ref["train_step_ms"] / auto["train_step_ms"]
    result["inference_speedup_vs_reference"] = auto["inference_images_per_s"] / ref["inference_images_per_s"]
    result.update(scale=scale, backbone=backbone, image_size=size, batch=batch, precision=precision)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--scale", default="all", choices=("world", "paper", "all"))
    p.add_argument("--device", default=None)
    p.add_argument("--world-backbone", default="regnetx_002")
    p.add_argument("--world-size", type=int, default=96)
    p.add_argument("--paper-backbone", default="resnet50")
    p.add_argument("--paper-batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed repeats per measurement")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if args.scale in ("world", "all"):
        cpu = torch.device("cpu")
        report["world_cpu"] = measure(
            "world", args.world_backbone, args.world_size, 8, cpu, "fp32", args.steps
        )
    if args.scale in ("paper", "all"):
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type != "cuda":
            report["paper_gpu"] = {"skipped": "no CUDA device (run on a GPU machine: --scale paper)"}
        else:
            report["gpu"] = torch.cuda.get_device_name(device)
            report["paper_gpu"] = {
                precision: measure(
                    "paper", args.paper_backbone, 1024, args.paper_batch, device, precision, args.steps
                )
                for precision in ("fp32", "bf16")
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
