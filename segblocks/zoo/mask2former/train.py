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
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorldConfig, collate_shapes
from segblocks.engine import (
    PRECISIONS,
    MetricLogger,
    autocast,
    backward_step,
    build_adamw,
    build_eval_loader,
    build_train_loader,
    cleanup_distributed,
    make_grad_scaler,
    progress_bar,
    resume,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    setup_logging,
    unwrap_model,
    warmup_multistep_schedule,
    wrap_ddp,
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
    p.add_argument("--image-size", type=int, default=96, help="shapes-world image side in pixels")
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--steps", type=int, default=20000, help="optimizer steps (upper bound)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop training after this wall time")
    p.add_argument("--lr", type=float, default=1e-4 * 4, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--backbone-lr-mult", type=float, default=1.0, help="paper: 0.1 for a pretrained backbone")
    p.add_argument(
        "--clip-grad", type=float, default=0.01, help="full-model gradient-norm clipping (paper: 0.01)"
    )
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument(
        "--eval-every", type=int, default=250, help="steps between evaluations (0: only at the end)"
    )
    p.add_argument("--eval-every-min", type=float, default=None, help="also evaluate every this many minutes")
    p.add_argument("--val-images", type=int, default=100)
    p.add_argument("--train-images", type=int, default=100000, help="length of the (generated) train set")
    p.add_argument("--out", default="runs/mask2former", help="run directory (checkpoints, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="resume from the newest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="Mask2FormerConfig overrides")
    return p


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--set: expected FIELD=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)

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
    overrides = _overrides(args.set)
    if args.open_vocab:
        model = build_mask2former(
            args.backbone,
            vocabulary=names,
            is_thing=is_thing,
            scale=args.scale,
            pretrained=pretrained,
            **overrides,
        )
    else:
        model = build_mask2former(
            args.backbone,
            num_classes=len(names),
            class_names=names,
            is_thing=is_thing,
            scale=args.scale,
            pretrained=pretrained,
            **overrides,
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
    scaler = make_grad_scaler(args.precision, device)  # enabled for fp16 only

    # --- resume ---------------------------------------------------------------------------
    ckpt = resume(
        args.resume,
        checkpoint_dir=run_dir / "checkpoints",
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        dist=dist,
    )
    start = ckpt.step if ckpt is not None else 0
    ddp_model = wrap_ddp(model, dist)
    # the batch of step s is the same whether the run was resumed or not
    train_loader = build_train_loader(
        train_set,
        batch_size=args.batch_size,
        dist=dist,
        seed=args.seed,
        start_step=start,
        num_workers=args.num_workers,
        collate_fn=collate_shapes,
    )
    elapsed_before = float(ckpt.extra.get("train_seconds", 0.0)) if ckpt is not None and ckpt.extra else 0.0
    log = MetricLogger(run_dir, enabled=dist.is_main, resume_step=start if ckpt else None)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "args.json").write_text(json.dumps(vars(args), indent=2))

    def run_eval(step: int, wall: float) -> Mask2FormerMetrics:
        model_ = unwrap_model(ddp_model)
        assert isinstance(model_, Mask2Former)
        metrics = evaluate(
            model_, val_loader, device=device, autocast=lambda: autocast(device, args.precision)
        )
        values = metrics.as_dict()
        values["wall_minutes"] = wall / 60.0
        log.log(step, values, prefix="val")
        logger.info("step %d (%.1f min): %s", step, wall / 60.0, json.dumps(metrics.as_dict()))
        return metrics

    def checkpoint(step: int, train_seconds: float) -> None:
        save_checkpoint(
            run_dir / "checkpoints",
            step=step,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            config=asdict(model.config) if model.config is not None else None,
            extra={"train_seconds": train_seconds},
            dist=dist,
            keep_last=2,
        )

    # --- loop -----------------------------------------------------------------------------
    budget = args.time_budget_min * 60.0 if args.time_budget_min else math.inf
    t0 = time.perf_counter() - elapsed_before
    last_eval_wall = time.perf_counter() - t0
    step = start
    model.train()
    bar = progress_bar(
        train_loader, total=args.steps, initial=start, desc="mask2former", enabled=dist.is_main
    )
    for batch in bar:
        if step >= args.steps or time.perf_counter() - t0 >= budget:
            break
        images = batch.images.to(device, non_blocking=True)
        targets = [t.to(device) for t in batch.targets]
        with autocast(device, args.precision):
            outputs = ddp_model(images)
            losses = unwrap_model(ddp_model).losses(outputs, targets)  # type: ignore[operator]
        loss = sum(losses.values())
        assert isinstance(loss, torch.Tensor)
        grad_norm = backward_step(loss, optimizer=optimizer, scaler=scaler, max_norm=args.clip_grad or None)
        scheduler.step()
        step += 1
        if step % 20 == 0 or step == 1:
            values = {"loss": loss.detach(), "lr": optimizer.param_groups[0]["lr"]}
            values.update({k: v.detach() for k, v in losses.items() if not k[-1].isdigit()})
            if grad_norm is not None:
                values["grad_norm"] = grad_norm
            values["wall_minutes"] = (time.perf_counter() - t0) / 60.0
            log.log(step, values, prefix="train")
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        wall = time.perf_counter() - t0
        due_steps = args.eval_every and step % args.eval_every == 0
        due_time = args.eval_every_min and wall - last_eval_wall >= args.eval_every_min * 60.0
        if due_steps or due_time:
            run_eval(step, wall)
            last_eval_wall = time.perf_counter() - t0
        if args.checkpoint_every and step % args.checkpoint_every == 0:
            checkpoint(step, time.perf_counter() - t0)
    bar.close()

    # --- final evaluation and checkpoint ---------------------------------------------------
    wall = time.perf_counter() - t0
    final = run_eval(step, wall)
    checkpoint(step, wall)
    if dist.is_main:
        summary = {"step": step, "wall_minutes": wall / 60.0, **final.as_dict()}
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    log.close()
    cleanup_distributed()
    return 0
