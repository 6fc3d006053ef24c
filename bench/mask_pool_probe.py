"""Per-sample learning curve of a supervised dense classifier: mask pooling of the shapes world's segments.

The yardstick for the tiny CLIP's mask-pooling target (issue 19), as ``thing_crops_probe.py`` is for
its crops: the CLIP's image trunk (``shapes_plain_os16``, stride 16, so an 8x8 map at 128 px),
trained *from labels* (all 18 classes) to name every ground-truth segment of whole images by the
trunk's map averaged inside the segment's mask (``segblocks.ops.mask_pool``) and a linear layer.
If it names the val things far above the CLIP's mask pooling in the same CPU minutes, the stride-16
map is not the limit and the CLIP's recipe is; if it stalls near it, the map (or the trunk) is.

Prints one JSON line per evaluation: images seen, minutes, val top-1 over the segments of the
first ``--val-images`` val images, things and stuff apart. Example::

    python bench/mask_pool_probe.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import segblocks.backbones  # noqa: F401  (registers shapes_plain_os16 with timm)
from segblocks.data.shapes import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.ops import mask_pool


def batch(world: ShapesWorld, indices: range) -> tuple[Tensor, Tensor, Tensor]:
    """Images ``[B, 3, H, W]``, their segment masks ``[B, S, H, W]`` (padded with empty masks) and
    labels ``[B, S]`` (``-1`` for padding)."""
    samples = [world.sample(i) for i in indices]
    targets = [s.to_targets() for s in samples]
    most = max(len(t.labels) for t in targets)
    h, w = targets[0].masks.shape[-2:]
    masks = torch.zeros(len(samples), most, h, w, dtype=torch.bool)
    labels = torch.full((len(samples), most), -1, dtype=torch.int64)
    for b, t in enumerate(targets):
        masks[b, : len(t.labels)] = t.masks
        labels[b, : len(t.labels)] = t.labels
    return torch.stack([s.image_tensor() for s in samples]), masks, labels


class DenseProbe(nn.Module):
    """A timm trunk's last map, mask-pooled per segment, then a linear classifier."""

    def __init__(self, model: str, num_classes: int) -> None:
        super().__init__()
        self.trunk = timm.create_model(model, num_classes=0, global_pool="")
        self.fc = nn.Linear(self.trunk.num_features, num_classes)

    def forward(self, images: Tensor, masks: Tensor) -> Tensor:
        """``[B, S, num_classes]`` logits of every segment."""
        return self.fc(mask_pool(self.trunk.forward_features(images), masks))


@torch.no_grad()
def evaluate(model: DenseProbe, data: list[tuple[Tensor, Tensor, Tensor]]) -> dict[str, float]:
    """Top-1 (%) of the val segments, things and stuff apart."""
    model.eval()
    hits: dict[bool, list[bool]] = {True: [], False: []}
    for images, masks, labels in data:
        pred = model(images, masks).argmax(-1)
        for p, y in zip(pred[labels >= 0].tolist(), labels[labels >= 0].tolist()):
            hits[CATEGORIES[y].is_thing].append(p == y)
    model.train()
    return {
        "things_top1": round(100 * sum(hits[True]) / len(hits[True]), 1),
        "stuff_top1": round(100 * sum(hits[False]) / len(hits[False]), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes_plain_os16", help="a timm trunk (stride-16 map)")
    p.add_argument("--images", type=int, default=16, help="whole images per step")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--eval-every", type=int, default=50, help="steps")
    p.add_argument("--val-images", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = ShapesWorldConfig(image_size=(128, 128), seed=args.seed)
    train, val = ShapesWorld(config, split="train"), ShapesWorld(config, split="val")
    val_data = [batch(val, range(i, min(i + 25, args.val_images))) for i in range(0, args.val_images, 25)]
    model = DenseProbe(args.model, len(CATEGORIES))
    steps_guess = 3_000
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    start, step = time.perf_counter(), 0
    while (time.perf_counter() - start) / 60 < args.minutes:
        images, masks, labels = batch(train, range(step * args.images, (step + 1) * args.images))
        warm = min(1.0, (step + 1) / 50)
        for group in opt.param_groups:
            group["lr"] = args.lr * warm * 0.5 * (1 + np.cos(np.pi * min(1.0, step / steps_guess)))
        logits = model(images, masks)
        loss = F.cross_entropy(logits[labels >= 0], labels[labels >= 0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % args.eval_every == 0:
            minutes = round((time.perf_counter() - start) / 60, 2)
            point = {"step": step, "images_seen": step * args.images, "minutes": minutes}
            print(json.dumps({**point, **evaluate(model, val_data)}), flush=True)


if __name__ == "__main__":
    main()
