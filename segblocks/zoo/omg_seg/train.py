"""``segblocks train omg-seg``: joint co-training on the shapes world, then every task evaluated.

The loop reads like the paper's training section: set-up; data (three streams of the training
classes only -- panoptic images as 2-frame pseudo-clips, 2-frame clips, and a class-agnostic prompt
branch -- interleaved by a balanced schedule, one task a batch as in the official code); the model
(frozen tiny CLIP, MSDeformAttn pixel decoder, the shared decoder, OMG classifier against the
training classes' text embeddings, objectness head, location queries); AdamW with the official
schedule (warm-up from 0.001x, x0.1 at 8/12 and 11/12 of training, clipping 0.01, fp32); the loop
(semantic queries: class 2, BCE 5, Dice 5, objectness 2; location queries: BCE 5 and Dice 5 only;
every decoder layer supervised); then one evaluation of every task with the full vocabulary
(training and held-out classes by name), written to ``final.json``.

Example (world scale, the card's run)::

    segblocks train omg-seg --variant tiny --image-size 96 --batch-size 4 --steps 3000 \
        --time-budget-min 15 --threads 1 --out runs/omg_seg
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from segblocks.data import (
    CATEGORIES,
    ShapesClipDataset,
    ShapesDataset,
    ShapesWorldConfig,
    add_split_argument,
    add_world_arguments,
    split_from_args,
)
from segblocks.engine import (
    TrainingRun,
    TrainOptions,
    add_train_arguments,
    autocast,
    backward_step,
    build_adamw,
    build_train_loader,
    cleanup_distributed,
    parse_overrides,
    setup_process,
    training_step_fn,
    warmup_multistep_schedule,
)
from segblocks.structures import Batch
from segblocks.zoo.omg_seg.build import DEFAULT, build_omg_seg
from segblocks.zoo.omg_seg.config import get_config
from segblocks.zoo.omg_seg.cotraining import (
    KINDS,
    PromptedImages,
    collate_clips_seen,
    collate_prompted,
    collate_pseudo_clips,
    seen_world,
    task_schedule,
)
from segblocks.zoo.omg_seg.evaluate import evaluate_all
from segblocks.zoo.omg_seg.predictor import OMGSegPredictor

__all__ = ["build_parser", "main", "parse_mix"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe."""
    p = argparse.ArgumentParser(
        prog="segblocks train omg-seg",
        description="Co-train OMG-Seg on shapes-world images, clips and prompts; evaluate every task.",
    )
    p.add_argument("--variant", default="tiny", choices=("tiny", "convnext_large"))
    p.add_argument("--clip-pretrained", default=DEFAULT, help="CLIP weights: tag, file, 'none' or 'default'")
    p.add_argument(
        "--mix",
        default="image=1,clip=1,prompt=1",
        help="batches of each kind a cycle of the balanced schedule (image, clip, prompt; 0 leaves one out)",
    )
    p.add_argument(
        "--frames", type=int, default=2, help="frames of a training clip and a pseudo-clip (official: 2)"
    )
    p.add_argument("--val-clips", type=int, default=20, help="validation clips")
    p.add_argument("--val-frames", type=int, default=8, help="frames of a validation clip")
    p.add_argument("--window", type=int, default=2, help="frames of an inference window (linked by queries)")
    add_train_arguments(p, out="runs/omg_seg", eval_every=0, lr=1e-4)  # official: lr 1e-4, wd 0.05
    add_split_argument(p)
    add_world_arguments(p)
    return p


def parse_mix(text: str) -> dict[str, int]:
    """``"image=1,clip=1,prompt=1"`` -> ``{"image": 1, "clip": 1, "prompt": 1}``.

    Args:
        text: the ``--mix`` option.

    Raises:
        ValueError: on a malformed entry or an unknown kind.
    """
    mix: dict[str, int] = {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        kind, sep, count = part.partition("=")
        if not sep or kind not in KINDS or not count.strip().isdigit():
            raise ValueError(f"--mix: expected KIND=COUNT entries with KIND in {KINDS}, got {part!r}")
        mix[kind] = int(count)
    return mix


def _interleave(
    loaders: Mapping[str, Iterator[Batch]], cycle: list[str], start: int
) -> Iterator[tuple[str, Batch]]:
    """Endless ``(kind, batch)`` pairs following the schedule from step ``start``."""
    step = start
    while True:
        kind = cycle[step % len(cycle)]
        yield kind, next(loaders[kind])
        step += 1


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = TrainOptions.from_args(args)
    cycle = task_schedule(parse_mix(args.mix))
    for name in ("frames", "val_frames", "window"):
        if getattr(args, name) < 1:
            raise ValueError(
                f"--{name.replace('_', '-')}: expected at least 1 frame, got {getattr(args, name)}"
            )

    # --- set-up ---------------------------------------------------------------------------
    dist = setup_process(args)
    run_dir = Path(args.out)
    device = dist.device

    # --- data: the training classes only; validation on the whole world ----------------------
    cfg = get_config(args.variant, **parse_overrides(args.set))
    world = ShapesWorldConfig(
        image_size=(args.image_size, args.image_size), seed=args.seed, split=split_from_args(args)
    )
    seen_ids = sorted(world.split.seen_ids)
    train_world = seen_world(world)
    images = ShapesDataset(train_world, split="train", length=args.train_images)
    streams: dict[str, tuple[Dataset[Any], Callable[[list[Any]], Batch]]] = {
        "image": (images, functools.partial(collate_pseudo_clips, seen_ids=seen_ids, frames=args.frames)),
        "clip": (
            ShapesClipDataset(train_world, split="train", length=args.train_images, num_frames=args.frames),
            functools.partial(collate_clips_seen, seen_ids=seen_ids),
        ),
        "prompt": (PromptedImages(images, num_prompts=cfg.num_prompts, seed=args.seed), collate_prompted),
    }
    val_images = ShapesDataset(world, split="val", length=args.val_images)
    val_clips = ShapesClipDataset(world, split="val", length=args.val_clips, num_frames=args.val_frames)

    # --- model: trained against the training classes' names ---------------------------------
    by_id = {c.id: c for c in CATEGORIES}
    model = build_omg_seg(
        cfg,
        vocabulary=[by_id[i].name for i in seen_ids],
        is_thing=[by_id[i].is_thing for i in seen_ids],
        clip_pretrained=None if args.clip_pretrained.lower() == "none" else args.clip_pretrained,
    )
    model.to(device)
    counts = model.state_summary()
    logger.info("trainable parameters %.2fM, frozen %.2fM", counts["trainable"] / 1e6, counts["frozen"] / 1e6)
    predictor = OMGSegPredictor(
        model,
        vocabulary=[c.name for c in CATEGORIES],
        is_thing=[c.is_thing for c in CATEGORIES],
        window=args.window,
    )

    # --- optimizer and schedule (official: warm-up from 0.001x, x0.1 at epochs 8 and 11 of 12) ----
    optimizer = build_adamw(model, lr=args.lr, weight_decay=args.weight_decay)
    first = int(8 / 12 * args.steps)
    scheduler = warmup_multistep_schedule(
        optimizer,
        milestones=[first, max(first + 1, int(11 / 12 * args.steps))],
        warmup_steps=args.warmup_steps,
        warmup_factor=0.001,
    )

    def run_eval() -> dict[str, float]:  # every task, full vocabulary
        model.eval()
        with autocast(device, args.precision):
            metrics = evaluate_all(
                predictor,
                (val_images[i] for i in range(len(val_images))),
                (val_clips[i] for i in range(len(val_clips))),
                device=device,
            )
        model.train()
        return metrics.as_dict()

    # --- resume, then the balanced loop: one task a batch --------------------------------------
    run = TrainingRun.start(
        model,
        optimizer=optimizer,
        scheduler=scheduler,
        options=options,
        run_dir=run_dir,
        dist=dist,
        args=vars(args),
        checkpoint_extra={
            "vocabulary": list(model.train_vocabulary.names),
            "is_thing": list(model.train_vocabulary.is_thing),
        },
    )
    done = {k: sum(1 for s in range(run.step) if cycle[s % len(cycle)] == k) for k in streams}
    loaders = {
        kind: iter(
            build_train_loader(  # the batch of step s is the same whether resumed or not
                dataset,
                batch_size=args.batch_size,
                dist=dist,
                seed=args.seed + i,
                start_step=done[kind],
                num_workers=args.num_workers,
                collate_fn=collate,
            )
        )
        for i, (kind, (dataset, collate)) in enumerate(streams.items())
        if kind in cycle
    }
    training_step = training_step_fn(model, dist)  # model.training_step, through DDP under torchrun
    model.train()
    for kind, batch in run.progress(_interleave(loaders, cycle, run.step), desc="omg-seg"):
        with autocast(device, args.precision):
            losses = training_step(batch.to(device, non_blocking=True))  # one task's losses
        loss = sum(losses.values(), torch.zeros((), device=device))
        grad_norm = backward_step(
            loss, optimizer=optimizer, scaler=run.scaler, max_norm=args.clip_grad or None
        )
        scheduler.step()
        run.end_step(
            loss,
            {f"{kind}:{k}": v for k, v in losses.items()},
            lr=optimizer.param_groups[0]["lr"],
            grad_norm=grad_norm,
        )
        if run.eval_due():
            run.evaluate(run_eval)
        if run.checkpoint_due():
            run.save_checkpoint()

    # --- final evaluation of every task and checkpoint ----------------------------------------
    wall = run.wall_seconds
    final = run_eval()
    run.finish(final, wall_seconds=wall)
    if dist.is_main:
        summary = {
            "step": run.step,
            "wall_minutes": wall / 60.0,
            "mix": args.mix,
            "seen": [by_id[i].name for i in seen_ids],
            "held_out": sorted(world.split.unseen),
            **final,
        }
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    cleanup_distributed()
    return 0
