"""Shapes-world generation speed: images (and clip frames) per second with every annotation.

Prints JSON. Runs on one CPU thread (the issue's target: >= 100 images/s of 128x128 on one core).

    python bench/shapes_world.py [--images 300] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from segblocks.data import ShapesDataset, ShapesWorld, ShapesWorldConfig


def _rate(fn: object, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)  # type: ignore[operator]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = ShapesWorldConfig(image_size=(args.size, args.size))
    world = ShapesWorld(config, split="train")
    dataset = ShapesDataset(config, split="train", length=args.images)
    world.sample(0)  # warm-up
    frames = 8
    result = {
        "benchmark": "shapes_world_generation",
        "image_size": [args.size, args.size],
        "threads": 1,
        "machine": platform.processor() or platform.machine(),
        "samples_per_s": round(_rate(world.sample, args.images), 1),
        "dataset_items_per_s": round(_rate(dataset.__getitem__, args.images), 1),
        "clip_frames_per_s": round(
            frames * _rate(lambda i: world.sample_clip(i, num_frames=frames), max(1, args.images // frames)),
            1,
        ),
        "target_samples_per_s": 100,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
