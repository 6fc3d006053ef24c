"""Seconds per tiny-CLIP training step (forward and backward of the recipe's losses) in four numeric modes.

The tiny CLIP's recipe meets issue 19's targets at 1,200 steps, about 41 minutes on two cores where
30 are asked (its card), so the step must get cheaper. This times the recipe's losses
(``clip_losses`` with the recipe's options, 32 images and their crops a step, a fresh random tower)
in fp32, under bf16 autocast, with channels-last memory, and both, on the same batches in the same
run, and prints the seconds a step and each mode's ratio to fp32. Drawing the batch and the
optimizer step are not timed. Whether bf16 keeps the recipe's accuracy is a training question this
does not answer. Example::

    python bench/clip_step_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from segblocks.backbones import OpenCLIPBackbone
from segblocks.data.shapes import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.pretrain.clip_data import ClipBatch, make_clip_batch
from segblocks.pretrain.clip_losses import clip_losses

MODES = ("fp32", "bf16", "channels_last", "bf16+channels_last")


def step_seconds(mode: str, batches: list[ClipBatch], unseen: frozenset[int]) -> float:
    """Mean seconds of forward + backward over ``batches[1:]`` (the first warms up)."""
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone("shapes-clip-tiny", pretrained=None, frozen=False).train()
    head = torch.nn.Linear(backbone.embed_dim, len(CATEGORIES))
    if "channels_last" in mode:
        backbone = backbone.to(memory_format=torch.channels_last)
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in mode):
            losses = clip_losses(
                backbone,
                batch,
                np.random.default_rng(0),
                unseen_ids=unseen,
                label_head=head,
                crop_statistics=True,
                phrase_matching=True,
                class_targets="phrases",
            )
            loss = sum((v.float() for v in losses.values()), torch.zeros(()))
        loss.backward()
        if i:
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=4, help="batches timed per mode (after one warm-up)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = ShapesWorldConfig(image_size=(128, 128))
    world = ShapesWorld(config, split="train")
    rng = np.random.default_rng(0)
    batches = [
        make_clip_batch(world, range(s * 32, (s + 1) * 32), rng, crop_size=32, views=2)
        for s in range(args.steps + 1)
    ]
    seconds = {m: step_seconds(m, batches, frozenset(config.split.unseen_ids)) for m in MODES}
    result: dict[str, object] = {"threads": args.threads, "steps": args.steps}
    result.update({f"{m}_seconds": round(s, 3) for m, s in seconds.items()})
    result.update({f"{m}_vs_fp32": round(s / seconds["fp32"], 3) for m, s in seconds.items() if m != "fp32"})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
