"""``segblocks train mask2former``: train and evaluate Mask2Former on the shapes world.

The loop reads like the paper's training section: set-up, data, model, optimizer and schedule,
resume, loop (AdamW, full-model gradient clipping, deep supervision), periodic evaluation (PQ, mIoU,
mask AP on val), checkpoints. It runs on one CPU, one GPU or under ``torchrun``.

Example (world scale, the model card's run)::

    segblocks train mask2former --backbone resnet18 --image-size 96 --time-budget-min 30 \
        --out runs/mask2former_world
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig, collate_shapes
from segblocks.engine import (
    FitOptions,
    add_fit_arguments,
    autocast,
    build_adamw,
    build_eval_loader,
    cleanup_distributed,
    fit,
    parse_overrides,
    seed_everything,
    setup_distributed,
    setup_logging,
    warmup_multistep_schedule,
)
from segblocks.zoo.mask2former.build import build_mask2former
from segblocks.zoo.mask2former.evaluate import Mask2FormerMetrics, evaluate
from segblocks.zoo.mask2former.model import Mask2Former

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe."""
    p = argparse.ArgumentParser(
        prog="segblocks train mask2former", description="Train and evaluate Mask2Former on the shapes world."
    )
    p.add_argument("--backbone", default="resnet18", help="timm name, 'timm:NAME' or 'clip:MODEL@TAG'")
    p.add_argument("--pretrained", default=None, help="backbone weights: a tag/file, or 'timm' for timm's")
    p.add_argument("--open-vocab", action="store_true", help="cosine class head on the CLIP text embeddings")
    p.add_argument("--scale", default="world", choices=("world", "paper"))
    p.add_argument("--backbone-lr-mult", type=float, default=1.0, help="paper: 0.1 for a pretrained backbone")
    add_fit_arguments(p, out="runs/mask2former", eval_every=250, lr=4e-4)
    return p


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = FitOptions.from_args(args)

    # --- set-up ---------------------------------------------------------------------------
    dist = setup_distributed(device=args.device)
    setup_logging(dist)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed, rank=dist.rank)
    run_dir = Path(args.out)
    device = dist.device

    # --- data: endless freshly drawn training images, a fixed validation set ------------------
    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    train_set = ShapesDataset(world, split="train", length=args.train_images)
    val_set = ShapesDataset(world, split="val", length=args.val_images)
    val_loader = build_eval_loader(
        val_set,
        batch_size=args.batch_size,
        dist=dist,
        num_workers=args.num_workers,
        collate_fn=collate_shapes,
    )

    # --- model ----------------------------------------------------------------------------
    names = [c.name for c in CATEGORIES]
    is_thing = [c.is_thing for c in CATEGORIES]
    pretrained: bool | str | None = True if args.pretrained == "timm" else args.pretrained
    classes = {"vocabulary": names} if args.open_vocab else {"num_classes": len(names), "class_names": names}
    model = build_mask2former(
        args.backbone,
        **classes,
        is_thing=is_thing,
        scale=args.scale,
        pretrained=pretrained,
        **parse_overrides(args.set),
    )
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    logger.info("trainable parameters %.2fM, frozen %.2fM", trainable / 1e6, frozen / 1e6)

    # --- optimizer and schedule (paper: AdamW, steps at 0.889 and 0.963 of training) ----------
    optimizer = build_adamw(
        model, lr=args.lr, weight_decay=args.weight_decay, backbone_lr_multiplier=args.backbone_lr_mult
    )
    scheduler = warmup_multistep_schedule(
        optimizer,
        milestones=[int(0.889 * args.steps), max(int(0.889 * args.steps) + 1, int(0.963 * args.steps))],
        warmup_steps=args.warmup_steps,
        warmup_factor=0.01,
    )

    # --- resume, loop, evaluation (PQ, mIoU, mask AP on val), checkpoints ---------------------
    def run_eval(model_: torch.nn.Module) -> Mask2FormerMetrics:
        assert isinstance(model_, Mask2Former)
        return evaluate(model_, val_loader, device=device, autocast=lambda: autocast(device, args.precision))

    result = fit(
        model,
        train_set=train_set,
        collate_fn=collate_shapes,
        optimizer=optimizer,
        scheduler=scheduler,
        options=options,
        run_dir=run_dir,
        dist=dist,
        evaluate=run_eval,
        flatten=Mask2FormerMetrics.as_dict,
        args=vars(args),
        desc="mask2former",
    )
    if dist.is_main:
        summary = {"step": result.step, "wall_minutes": result.wall_seconds / 60.0, **result.final.as_dict()}
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    cleanup_distributed()
    return 0
