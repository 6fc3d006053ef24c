"""Peak memory of windowed video inference against the video's length, printed as JSON.

A world-scale Mask2Former (random weights: memory does not depend on them) links the windows of a
128 px video of 100 and of 300 frames, each in a fresh process; frames are made one at a time, as a
video reader decodes them, so the input never sits in memory whole. The JSON gives each run's peak
resident memory, its growth over the process before inference, and the ratio between the two lengths
(the model card's criterion: within 10 %).

Usage::

    python bench/video_memory.py [--frames 100 300] [--window 2] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from collections.abc import Iterator

import torch


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _frames(count: int, size: int) -> Iterator[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    for _ in range(count):
        yield torch.rand(3, size, size, generator=gen)


def measure(num_frames: int, window: int, size: int) -> dict[str, float]:
    """Link one video of ``num_frames`` frames in this process; return its memory figures."""
    from segblocks.data import CATEGORIES
    from segblocks.zoo import build_mask2former
    from segblocks.zoo.mask2former import Mask2FormerVideoPredictor

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_mask2former(
        "regnetx_002",
        num_classes=len(CATEGORIES),
        class_names=[c.name for c in CATEGORIES],
        is_thing=[c.is_thing for c in CATEGORIES],
        variant="world",
    ).eval()
    predictor = Mask2FormerVideoPredictor(model, window=window)
    with torch.no_grad():
        model(torch.rand(1, window, 3, size, size))  # warm up allocator and kernels
    before = _peak_rss_mb()
    linked = predictor.link(_frames(num_frames, size))
    after = _peak_rss_mb()
    return {
        "frames": num_frames,
        "peak_rss_mb": after,
        "growth_mb": after - before,
        "linked_outputs_mb": linked.mask_logits.numel() * 2 / 2**20,  # kept as fp16 by the linker
    }


def main() -> None:
    """Run each length in a fresh process and print the comparison as JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, nargs="+", default=[100, 300])
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.window, args.size)))
        return
    runs = []
    for n in args.frames:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(n),
            "--window",
            str(args.window),
            "--size",
            str(args.size),
        ]
        runs.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    short, long = runs[0], runs[-1]
    print(
        json.dumps(
            {
                "benchmark": "video_memory",
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "window": args.window,
                "size": args.size,
                "runs": runs,
                "peak_ratio_long_vs_short": long["peak_rss_mb"] / short["peak_rss_mb"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
