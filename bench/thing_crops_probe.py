"""Per-sample learning curve of a supervised classifier on the shapes world's thing crops.

The simplest model that could name the world's things: a classifier trained with labels on the crops
the tiny CLIP is evaluated on (``thing_crop_box``, all 12 thing classes). It is the yardstick for
the tiny CLIP's recipe (issue 19): if a plain CNN or the CLIP's own image trunk learns the crops
from labels in a few CPU minutes, a CLIP that does not is limited by its recipe, not by compute.

Prints one JSON line per evaluation: crops seen, minutes, val top-1 over the first ``--val-things``
val things. Example::

    python bench/thing_crops_probe.py --model cnn --minutes 5
    python bench/thing_crops_probe.py --model shapes_resnet_os16 --minutes 5 --lr 1e-2
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

import segblocks.backbones  # noqa: F401  (registers shapes_resnet_os16 with timm)
from segblocks.data.shapes import ShapesWorld, ShapesWorldConfig
from segblocks.pretrain.clip_data import crop_images, thing_crop_box


def plain_cnn(width: int = 32, num_classes: int = 12) -> nn.Module:
    """Four stages of two 3x3 conv-BN-ReLU, max-pooled between stages, then average pool and linear."""
    layers: list[nn.Module] = []
    c_in = 3
    for stage in range(4):
        c = width * 2**stage
        for _ in range(2):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        if stage < 3:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


def thing_crops(
    world: ShapesWorld, start: int, count: int, size: int, rng: np.random.Generator | None
) -> tuple[Tensor, Tensor, int]:
    """At least ``count`` thing crops from images ``start, start+1, ...``; returns crops, labels, next index."""
    crops, labels, i = [], [], start
    while sum(len(c) for c in labels) < count:
        s = world.sample(i)
        boxes = [thing_crop_box(g.bbox, rng) for g in s.thing_segments]
        crops.append(crop_images(s.image_tensor()[None], [boxes], size))
        labels.append(torch.tensor([g.category_id for g in s.thing_segments], dtype=torch.int64))
        i += 1
    return torch.cat(crops), torch.cat(labels), i


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn", help="'cnn' (plain 4-stage BN CNN) or a timm model name")
    p.add_argument("--width", type=int, default=32, help="width of the plain CNN's first stage")
    p.add_argument("--crop-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=128, help="crops per step")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--eval-every", type=int, default=50, help="steps")
    p.add_argument("--val-things", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = ShapesWorldConfig(image_size=(128, 128), seed=args.seed)
    train, val = ShapesWorld(config, split="train"), ShapesWorld(config, split="val")
    val_x, val_y, _ = thing_crops(val, 0, args.val_things, args.crop_size, None)
    val_x, val_y = val_x[: args.val_things], val_y[: args.val_things]
    if args.model == "cnn":
        model = plain_cnn(args.width)
    else:
        model = timm.create_model(args.model, num_classes=12)
    steps_guess = 10_000
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    start, seen, index, step = time.perf_counter(), 0, 0, 0
    while (time.perf_counter() - start) / 60 < args.minutes:
        x, y, index = thing_crops(train, index, args.batch, args.crop_size, rng)
        warm = min(1.0, (step + 1) / 50)
        for group in opt.param_groups:
            group["lr"] = args.lr * warm * 0.5 * (1 + np.cos(np.pi * min(1.0, step / steps_guess)))
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
        step += 1
        if step % args.eval_every == 0:
            model.eval()
            with torch.no_grad():
                top1 = (model(val_x).argmax(-1) == val_y).float().mean().item() * 100
            model.train()
            minutes = (time.perf_counter() - start) / 60
            print(
                json.dumps(
                    {
                        "step": step,
                        "thing_crops_seen": seen,
                        "minutes": round(minutes, 2),
                        "thing_top1": round(top1, 1),
                    }
                )
            )


if __name__ == "__main__":
    main()
