"""Per-image learning curve of the simplest promptable segmenter on the tiny SAM's data.

The yardstick for the tiny SAM's recipe (issue 19): a small U-Net that sees the prompt as extra input
channels (a filled box, Gaussian maps of the positive and negative clicks) and predicts one mask at
the full 128x128. It trains on the tiny SAM's training world (3-6 things an image, a fresh image for
every slot) with the tiny SAM's prompt sampler and counts (4 single points, 3 boxes, 1 several-point
prompt an image), cross-entropy 1 : dice 1; every target is the whole thing (one output cannot
cover SAM's part/whole ambiguity, so parts are not drawn). It is evaluated like the tiny SAM
(`evaluate_shapes_sam`'s protocol): the centre-most click and the tight box of every val thing of
the fixed val world. With one output, its 1-point number compares with SAM's *oracle* 1-point.

If this model reaches a given mIoU after fewer images than the tiny SAM, on the same core, the
tiny SAM's shortfall there is its recipe or architecture, not the compute budget.

Prints one JSON line per evaluation (images and prompts seen, minutes, 1-point and 1-box mIoU)::

    python bench/promptable_probe.py --minutes 10
    python bench/promptable_probe.py --minutes 10 --width 24 --lr 3e-3
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segblocks.data.shapes import ShapesWorld, ShapesWorldConfig
from segblocks.data.shapes.sample import ShapesSample
from segblocks.pretrain.shapes_sam.prompts import PromptCounts, eval_prompts, sample_training_prompts

_SIGMA = 3.0  # pixels: spread of a click's Gaussian map


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class PromptUNet(nn.Module):
    """A 4-level U-Net over ``[B, 6, H, W]`` (RGB, box, positive clicks, negative clicks) -> ``[B, 1, H, W]`` logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(4)]
        self.down = nn.ModuleList()
        c_in = 6
        for w in widths:
            self.down.append(_block(c_in, w))
            c_in = w
        self.up = nn.ModuleList(_block(widths[i] + widths[i + 1], widths[i]) for i in range(3))
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in (2, 1, 0):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([skips[i], x], dim=1))
        return self.head(x)


def prompt_maps(size: int, boxes: Tensor | None, points: Tensor | None, labels: Tensor | None) -> Tensor:
    """``[N, 3, S, S]`` prompt channels: the filled box, positive and negative click Gaussians.

    ``boxes [N, 4]`` are SAM's first/last covered pixels; ``points [N, P, 2]`` with ``labels [N, P]``
    (1 positive, 0 negative, -1 padding). One of ``boxes`` / ``points`` is given.
    """
    n = len(boxes) if boxes is not None else len(points)  # type: ignore[arg-type]
    maps = torch.zeros(n, 3, size, size)
    grid = torch.arange(size, dtype=torch.float32)
    if boxes is not None:
        x_in = (grid[None] >= boxes[:, 0:1]) & (grid[None] <= boxes[:, 2:3])  # [N, S]
        y_in = (grid[None] >= boxes[:, 1:2]) & (grid[None] <= boxes[:, 3:4])
        maps[:, 0] = (y_in[:, :, None] & x_in[:, None, :]).float()
    if points is not None and labels is not None:
        dx = grid[None, None, None, :] - points[:, :, 0, None, None]  # [N, P, 1, S]
        dy = grid[None, None, :, None] - points[:, :, 1, None, None]  # [N, P, S, 1]
        g = torch.exp(-(dx**2 + dy**2) / (2 * _SIGMA**2))  # [N, P, S, S]
        maps[:, 1] = (g * (labels == 1)[:, :, None, None]).amax(dim=1)
        maps[:, 2] = (g * (labels == 0)[:, :, None, None]).amax(dim=1)
    return maps


def training_batch(
    samples: list[ShapesSample], rng: np.random.Generator, counts: PromptCounts
) -> tuple[Tensor, Tensor]:
    """Inputs ``[N, 6, S, S]`` and targets ``[N, 1, S, S]`` of every prompt of ``samples``."""
    xs, ys = [], []
    for s in samples:
        image = s.image_tensor()
        for group in sample_training_prompts(s, rng, counts):
            p = group.prompts
            maps = prompt_maps(image.shape[-1], p.boxes, p.points, p.point_labels)
            xs.append(torch.cat([image[None].expand(len(maps), -1, -1, -1), maps], dim=1))
            ys.append(group.targets[:, None].float())
    return torch.cat(xs), torch.cat(ys)


def loss_fn(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-pixel cross-entropy 1 : dice 1, as the tiny SAM's recipe."""
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    prob = logits.sigmoid().flatten(1)
    t = targets.flatten(1)
    dice = 1 - (2 * (prob * t).sum(1) + 1) / (prob.sum(1) + t.sum(1) + 1)
    return bce + dice.mean()


@torch.no_grad()
def evaluate(model: nn.Module, samples: list[ShapesSample]) -> dict[str, float]:
    """1-point (centre-most click) and 1-box mIoU over the things of ``samples``."""
    model.eval()
    ious: dict[str, list[Tensor]] = {"point": [], "box": []}
    for s in samples:
        points, boxes, masks = eval_prompts(s)
        if len(masks) == 0:
            continue
        image = s.image_tensor()
        labels = torch.ones(points.shape[:2])
        for name, maps in (
            ("point", prompt_maps(image.shape[-1], None, points, labels)),
            ("box", prompt_maps(image.shape[-1], boxes, None, None)),
        ):
            x = torch.cat([image[None].expand(len(maps), -1, -1, -1), maps], dim=1)
            pred = (model(x)[:, 0] > 0).flatten(1)
            gt = masks.flatten(1)
            inter = (pred & gt).sum(1).float()
            union = (pred | gt).sum(1).float().clamp(min=1)
            ious[name].append(inter / union)
    model.train()
    return {f"{k}_miou": round(float(torch.cat(v).mean()), 3) for k, v in ious.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=16, help="channels of the U-Net's first level")
    p.add_argument("--images", type=int, default=3, help="images per step (8 prompts each)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=3000, help="length of the cosine schedule")
    p.add_argument("--eval-every", type=int, default=250, help="steps")
    p.add_argument("--eval-images", type=int, default=32)
    p.add_argument("--final-images", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = ShapesWorld(
        ShapesWorldConfig(image_size=(128, 128), num_things=(3, 6), seed=args.seed), split="train"
    )
    val_world = ShapesWorld(ShapesWorldConfig(image_size=(128, 128), seed=0), split="val")
    val = [val_world.sample(i) for i in range(args.final_images)]
    counts = PromptCounts(part_prob=0.0, box_part_prob=0.0)
    model = PromptUNet(args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    start, step, images, prompts = time.perf_counter(), 0, 0, 0

    def report(samples: list[ShapesSample]) -> None:
        row = {"step": step, "images_seen": images, "prompts_seen": prompts}
        row["minutes"] = round((time.perf_counter() - start) / 60, 2)
        row.update(evaluate(model, samples), val_images=len(samples))
        print(json.dumps(row), flush=True)

    while step < args.steps and (time.perf_counter() - start) / 60 < args.minutes:
        batch = [train.sample(images + i) for i in range(args.images)]
        x, y = training_batch(batch, rng, counts)
        warm = min(1.0, (step + 1) / 50)
        for group in opt.param_groups:
            group["lr"] = args.lr * warm * (0.02 + 0.49 * (1 + np.cos(np.pi * step / args.steps)))
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step, images, prompts = step + 1, images + len(batch), prompts + len(x)
        if step % args.eval_every == 0:
            report(val[: args.eval_images])
    report(val)


if __name__ == "__main__":
    main()
