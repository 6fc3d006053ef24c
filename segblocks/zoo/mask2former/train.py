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

from segblocks.data import (
    CATEGORIES,
    ShapesDataset,
    ShapesWorldConfig,
    add_world_arguments,
    collate_batch,
)
from segblocks.engine import (
    TrainingRun,
    TrainOptions,
    add_train_arguments,
    autocast,
    backward_step,
    build_adamw,
    build_eval_loader,
    build_train_loader,
    cleanup_distributed,
    parse_overrides,
    setup_process,
    training_step_fn,
    warmup_multistep_schedule,
)
from segblocks.zoo.mask2former.build import build_mask2former
from segblocks.zoo.mask2former.evaluate import evaluate
from segblocks.zoo.mask2former.model import Mask2Former

__all__ = ["add_model_arguments", "build_parser", "main", "model_from_args", "optimizer_from_args"]

logger = logging.getLogger(__name__)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The model options shared by the image and the video recipe.

    Args:
        p: the recipe's parser.
    """
    p.add_argument("--backbone", default="resnet18", help="timm name, 'timm:NAME' or 'clip:MODEL@TAG'")
    p.add_argument("--pretrained", default=None, help="backbone weights: a tag/file, or 'timm' for timm's")
    p.add_argument("--open-vocab", action="store_true", help="cosine class head on the CLIP text embeddings")
    p.add_argument("--variant", default="world", choices=("world", "paper"))
    p.add_argument("--backbone-lr-mult", type=float, default=1.0, help="paper: 0.1 for a pretrained backbone")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe."""
    p = argparse.ArgumentParser(
        prog="segblocks train mask2former", description="Train and evaluate Mask2Former on the shapes world."
    )
    add_model_arguments(p)
    add_train_arguments(p, out="runs/mask2former", eval_every=250, lr=4e-4)
    add_world_arguments(p)
    return p


def model_from_args(args: argparse.Namespace) -> Mask2Former:
    """The shapes world's Mask2Former (all 18 classes) as the options ask for.

    Args:
        args: options parsed with :func:`add_model_arguments` (and ``--set`` overrides).
    """
    names = [c.name for c in CATEGORIES]
    pretrained: bool | str | None = True if args.pretrained == "timm" else args.pretrained
    classes = {"vocabulary": names} if args.open_vocab else {"num_classes": len(names), "class_names": names}
    return build_mask2former(
        args.backbone,
        **classes,
        is_thing=[c.is_thing for c in CATEGORIES],
        variant=args.variant,
        pretrained=pretrained,
        **parse_overrides(args.set),
    )


def optimizer_from_args(
    model: Mask2Former, args: argparse.Namespace
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW and the paper's schedule (warm-up, x0.1 at 0.889 and 0.963 of the steps).

    Args:
        model: the model to train.
        args: the recipe's options (``lr``, ``weight_decay``, ``backbone_lr_mult``, ``steps``, ``warmup_steps``).
    """
    optimizer = build_adamw(
        model, lr=args.lr, weight_decay=args.weight_decay, backbone_lr_multiplier=args.backbone_lr_mult
    )
    first = int(0.889 * args.steps)
    scheduler = warmup_multistep_schedule(
        optimizer,
        milestones=[first, max(first + 1, int(0.963 * args.steps))],
        warmup_steps=args.warmup_steps,
        warmup_factor=0.01,
    )
    return optimizer, scheduler


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = TrainOptions.from_args(args)

    # --- set-up ---------------------------------------------------------------------------
    dist = setup_process(args)
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
        collate_fn=collate_batch,
    )

    # --- model, optimizer and schedule (paper: AdamW, steps at 0.889 and 0.963 of training) -----
    model = model_from_args(args)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    logger.info("trainable parameters %.2fM, frozen %.2fM", trainable / 1e6, frozen / 1e6)
    optimizer, scheduler = optimizer_from_args(model, args)

    def run_eval() -> dict[str, float]:  # PQ, mIoU and mask AP on val
        return evaluate(
            model, val_loader, device=device, autocast=lambda: autocast(device, args.precision)
        ).as_dict()

    # --- resume, then the loop --------------------------------------------------------------
    run = TrainingRun.start(
        model,
        optimizer=optimizer,
        scheduler=scheduler,
        options=options,
        run_dir=run_dir,
        dist=dist,
        args=vars(args),
        checkpoint_extra={"backbone": args.backbone, "open_vocab": args.open_vocab},  # for segblocks eval
    )
    train_loader = build_train_loader(  # the batch of step s is the same whether resumed or not
        train_set,
        batch_size=args.batch_size,
        dist=dist,
        seed=args.seed,
        start_step=run.step,
        num_workers=args.num_workers,
        collate_fn=collate_batch,
    )
    training_step = training_step_fn(model, dist)  # model.training_step, through DDP under torchrun
    model.train()
    for batch in run.progress(train_loader, desc="mask2former"):  # until --steps or the time budget
        with autocast(device, args.precision):
            losses = training_step(batch.to(device, non_blocking=True))  # class, mask, dice (+ deep sup.)
        loss = sum(losses.values(), torch.zeros((), device=device))
        grad_norm = backward_step(
            loss, optimizer=optimizer, scaler=run.scaler, max_norm=args.clip_grad or None
        )
        scheduler.step()
        run.end_step(loss, losses, lr=optimizer.param_groups[0]["lr"], grad_norm=grad_norm)
        if run.eval_due():
            run.evaluate(run_eval)
        if run.checkpoint_due():
            run.save_checkpoint()

    # --- final evaluation and checkpoint ----------------------------------------------------
    wall = run.wall_seconds
    final = run_eval()
    run.finish(final, wall_seconds=wall)
    if dist.is_main:
        summary = {"step": run.step, "wall_minutes": wall / 60.0, **final}
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    cleanup_distributed()
    return 0
