"""A miniature training loop built from ``segblocks.engine``, used by the engine tests.

It reads like a zoo model's ``train.py``: set-up, data, model, optimizer, resume, loop, checkpoint.
Run it directly (``python tests/engine/tiny_train.py --run-dir ...``) or under
``python -m torch.distributed.run --nproc_per_node 2``. ``--kill-after-step`` and
``--kill-during-save-at`` make the process SIGKILL itself at a chosen point, so interruption
tests are deterministic.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import Dataset

import segblocks.engine.checkpoint as checkpoint_module
from segblocks import engine
from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig

NUM_CLASSES = len(CATEGORIES)


class SemanticShapes(Dataset[tuple[Tensor, Tensor]]):
    """Shapes-world images [3, S, S] in [0, 1] and their semantic maps [S, S], cached after first use."""

    def __init__(self, length: int = 64, size: int = 32) -> None:
        config = ShapesWorldConfig(image_size=(size, size), thing_radius=(0.12, 0.25), num_things=(1, 4))
        self.shapes = ShapesDataset(config, split="train", length=length)
        self.cache: dict[int, tuple[Tensor, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if index not in self.cache:
            example = self.shapes[index]
            self.cache[index] = (example.image, example.semantic)
        return self.cache[index]


class TinySegNet(nn.Module):
    """Two conv layers predicting per-pixel class logits [B, K, H, W]."""

    def __init__(self, *, width: int = 16, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(2, width), nn.ReLU())
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.backbone(images))


@engine.fp32
def segmentation_loss(logits: Tensor, semantic: Tensor) -> Tensor:
    """Per-pixel cross-entropy, always in fp32."""
    return F.cross_entropy(logits, semantic)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch size")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=engine.PRECISIONS, default="fp32")
    parser.add_argument("--save-every", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the final weights here")
    parser.add_argument("--kill-after-step", type=int, default=-1)
    parser.add_argument("--kill-during-save-at", type=int, default=-1)
    return parser.parse_args(argv)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def train(args: argparse.Namespace) -> list[float]:
    """Train and return the (rank-averaged) loss of every step run by this call."""
    torch.set_num_threads(1)
    # Set-up.
    dist = engine.setup_distributed(device="cpu")
    engine.seed_everything(args.seed, rank=dist.rank)
    if args.kill_during_save_at >= 0:  # die after the data files, before the manifest
        write_manifest = checkpoint_module._write_manifest

        def dying_manifest(staging: Path, step: int, names: list[str]) -> None:
            if step == args.kill_during_save_at:
                _die()
            write_manifest(staging, step, names)

        checkpoint_module._write_manifest = dying_manifest

    # Model, optimizer, schedule.
    model: nn.Module = TinySegNet().to(dist.device)
    optimizer = engine.build_adamw(model, lr=args.lr, weight_decay=0.05, backbone_lr_multiplier=0.5)
    scheduler = engine.warmup_cosine_schedule(optimizer, total_steps=args.steps, warmup_steps=3)
    scaler = engine.make_grad_scaler(args.precision, dist.device)
    checkpoint_dir = args.run_dir / "checkpoints"
    ckpt = engine.resume(
        args.resume,
        checkpoint_dir=checkpoint_dir,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        dist=dist,
    )
    start = ckpt.step if ckpt else 0
    model = engine.wrap_ddp(model, dist)

    # Data.
    local_batch = args.batch_size // dist.world_size
    loader = engine.build_train_loader(
        SemanticShapes(), batch_size=local_batch, dist=dist, seed=args.seed, start_step=start
    )

    # Loop.
    losses = []
    log = engine.MetricLogger(args.run_dir, enabled=dist.is_main, resume_step=start)
    bar = engine.progress_bar(range(start, args.steps), initial=start, total=args.steps, enabled=dist.is_main)
    for step, (images, semantic) in zip(bar, loader):
        with engine.autocast(dist.device, args.precision):
            logits = model(images.to(dist.device))
            loss = segmentation_loss(logits, semantic.to(dist.device))
        engine.backward_step(loss, optimizer=optimizer, scaler=scaler, max_norm=1.0)
        scheduler.step()
        metrics = engine.reduce_metrics({"loss": loss}, dist)
        losses.append(metrics["loss"])
        log.log(step + 1, metrics, prefix="train")
        if args.save_every and (step + 1) % args.save_every == 0:
            engine.save_checkpoint(
                checkpoint_dir,
                step=step + 1,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                config=vars(args),
                dist=dist,
                keep_last=3,
            )
        if step + 1 == args.kill_after_step:
            _die()
    log.close()
    # every rank counts itself: the total is the number of processes (checked under torchrun too)
    assert engine.sum_over_ranks(1, dist.device) == dist.world_size

    if args.out is not None and dist.is_main:
        state = engine.unwrap_model(model).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, args.out)
    engine.cleanup_distributed()
    return losses


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine.setup_logging(engine.DistInfo(rank=int(os.environ.get("RANK", "0"))))
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
