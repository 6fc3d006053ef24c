"""``segblocks train possam``: train PosSAM on the shapes world's seen classes, evaluate open-vocabulary.

The loop reads like the paper's training section (Sec. 4.1, App. A): set-up; data (panoptic
ground truth of the *seen* classes only; the unseen classes' pixels belong to no target); model
(frozen SAM and CLIP, trainable FPN, Mask2Former decoders, IoU head and LDP, trained against the seen
classes' text embeddings); AdamW with a multi-step schedule (paper: lr 1e-4, wd 0.05, x0.1 at 60%
and 80% of training); the loop (class 2.0, mask 5.0 + Dice 5.0, IoU 1.0, deep supervision); then
open-vocabulary panoptic evaluation on val with **all** classes for each classifier (LDP alone,
frozen CLIP alone, the fixed geometric ensemble, MASE), written to ``final.json``.

Example (world scale)::

    segblocks train possam --variant tiny --image-size 96 --time-budget-min 30 --out runs/possam_world
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
from segblocks.data.shapes.sample import ShapesSample
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
from segblocks.structures import Targets
from segblocks.zoo.mask2former.train import _overrides
from segblocks.zoo.possam.build import DEFAULT, build_possam
from segblocks.zoo.possam.evaluate import OpenVocabMetrics, evaluate
from segblocks.zoo.possam.model import PosSAM

__all__ = ["build_parser", "main", "seen_targets"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe."""
    p = argparse.ArgumentParser(
        prog="segblocks train possam",
        description="Train PosSAM on the shapes world's seen classes; evaluate open-vocabulary panoptic.",
    )
    p.add_argument("--variant", default="tiny", choices=("tiny", "vit_b", "vit_l", "vit_h"))
    p.add_argument("--sam-model", default=None, help="override the SAM encoder name")
    p.add_argument("--sam-checkpoint", default=DEFAULT, help="SAM weights: file, tag, 'none' or 'default'")
    p.add_argument("--clip-model", default=None, help="override the open_clip model name")
    p.add_argument("--clip-pretrained", default=DEFAULT, help="CLIP weights: tag, file, 'none' or 'default'")
    p.add_argument("--image-size", type=int, default=96, help="shapes-world image side in pixels")
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--steps", type=int, default=20000, help="optimizer steps (upper bound)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop training after this wall time")
    p.add_argument("--lr", type=float, default=1e-4 * 4, help="AdamW learning rate (paper: 1e-4 at batch 16)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--clip-grad", type=float, default=0.01, help="full-model gradient-norm clipping")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--log-every", type=int, default=20, help="steps between training-loss records")
    p.add_argument(
        "--eval-every", type=int, default=500, help="steps between evaluations (0: only at the end)"
    )
    p.add_argument("--val-images", type=int, default=100)
    p.add_argument("--train-images", type=int, default=100000, help="length of the (generated) train set")
    p.add_argument(
        "--out", default="runs/possam", help="run directory (checkpoints, metrics.jsonl, final.json)"
    )
    p.add_argument("--resume", action="store_true", help="resume from the newest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="PosSAMConfig overrides")
    return p


def _weights(value: str) -> str | None:
    return None if value.lower() == "none" else value


def seen_targets(samples: Sequence[ShapesSample], seen_ids: Sequence[int]) -> list[Targets]:
    """Panoptic targets of the seen classes only, labels re-indexed to positions in ``seen_ids``.

    Args:
        samples: the batch's shapes-world samples.
        seen_ids: sorted category ids of the training vocabulary.

    Returns:
        One :class:`~segblocks.structures.Targets` per sample (unseen segments dropped).
    """
    index = torch.full((max(c.id for c in CATEGORIES) + 1,), -1, dtype=torch.int64)
    index[torch.tensor(list(seen_ids))] = torch.arange(len(seen_ids))
    out = []
    for sample in samples:
        t = sample.to_targets(categories=frozenset(seen_ids))
        out.append(
            Targets(masks=t.masks, labels=index[t.labels], instance_ids=t.instance_ids, is_thing=t.is_thing)
        )
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

    # --- data: train on the seen classes, evaluate on all of them ----------------------------
    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    split = world.split
    seen_ids = sorted(split.seen_ids)
    train_set = ShapesDataset(world, split="train", length=args.train_images)
    val_set = ShapesDataset(world, split="val", length=args.val_images)
    val_loader = build_eval_loader(
        val_set,
        batch_size=args.batch_size,
        dist=dist,
        num_workers=args.num_workers,
        collate_fn=collate_shapes,
    )

    # --- model: the training vocabulary is the seen classes' names ----------------------------
    by_id = {c.id: c for c in CATEGORIES}
    model = build_possam(
        args.variant,
        vocabulary=[by_id[i].name for i in seen_ids],
        is_thing=[by_id[i].is_thing for i in seen_ids],
        sam_checkpoint=_weights(args.sam_checkpoint),
        clip_pretrained=_weights(args.clip_pretrained),
        sam_model=args.sam_model,
        clip_model=args.clip_model,
        **_overrides(args.set),
    )
    model.to(device)
    counts = model.state_summary()
    logger.info("trainable parameters %.2fM, frozen %.2fM", counts["trainable"] / 1e6, counts["frozen"] / 1e6)
    eval_vocab = model.encode_vocabulary([c.name for c in CATEGORIES], [c.is_thing for c in CATEGORIES])

    # --- optimizer and schedule (paper: AdamW; x0.1 at 150k and 200k of 250k iterations) --------
    optimizer = build_adamw(model, lr=args.lr, weight_decay=args.weight_decay)
    first = int(0.6 * args.steps)
    scheduler = warmup_multistep_schedule(
        optimizer,
        milestones=[first, max(first + 1, int(0.8 * args.steps))],
        warmup_steps=args.warmup_steps,
        warmup_factor=0.01,
    )
    scaler = make_grad_scaler(args.precision, device)

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

    def run_eval(step: int, wall: float) -> dict[str, OpenVocabMetrics]:
        model_ = unwrap_model(ddp_model)
        assert isinstance(model_, PosSAM)
        results = evaluate(
            model_,
            val_loader,
            vocabulary=eval_vocab,
            device=device,
            autocast=lambda: autocast(device, args.precision),
        )
        values: dict[str, Any] = {
            f"{name}/{k}": v for name, m in results.items() for k, v in m.as_dict().items()
        }
        values["wall_minutes"] = wall / 60.0
        log.log(step, values, prefix="val")
        logger.info(
            "step %d (%.1f min): %s", step, wall / 60.0, {n: round(m.pq, 2) for n, m in results.items()}
        )
        return results

    def checkpoint(step: int, train_seconds: float) -> None:
        save_checkpoint(
            run_dir / "checkpoints",
            step=step,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            config=asdict(model.config) if model.config is not None else None,
            extra={
                "train_seconds": train_seconds,
                "vocabulary": list(model.train_vocabulary.names),
                "is_thing": list(model.train_vocabulary.is_thing),
            },
            dist=dist,
            keep_last=2,
        )

    # --- loop -----------------------------------------------------------------------------
    budget = args.time_budget_min * 60.0 if args.time_budget_min else math.inf
    t0 = time.perf_counter() - elapsed_before
    step = start
    model.train()
    bar = progress_bar(train_loader, total=args.steps, initial=start, desc="possam", enabled=dist.is_main)
    for batch in bar:
        if step >= args.steps or time.perf_counter() - t0 >= budget:
            break
        images = batch.images.to(device, non_blocking=True)
        targets = [t.to(device) for t in seen_targets(batch.samples, seen_ids)]
        with autocast(device, args.precision):
            outputs = ddp_model(images)
            losses = unwrap_model(ddp_model).losses(outputs, targets)  # type: ignore[operator]
        loss = sum(losses.values())
        assert isinstance(loss, torch.Tensor)
        grad_norm = backward_step(loss, optimizer=optimizer, scaler=scaler, max_norm=args.clip_grad or None)
        scheduler.step()
        step += 1
        if step % max(1, args.log_every) == 0 or step == 1:
            values = {"loss": loss.detach(), "lr": optimizer.param_groups[0]["lr"]}
            values.update({k: v.detach() for k, v in losses.items() if not k[-1].isdigit()})
            if grad_norm is not None:
                values["grad_norm"] = grad_norm
            values["wall_minutes"] = (time.perf_counter() - t0) / 60.0
            log.log(step, values, prefix="train")
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        if args.eval_every and step % args.eval_every == 0:
            run_eval(step, time.perf_counter() - t0)
        if args.checkpoint_every and step % args.checkpoint_every == 0:
            checkpoint(step, time.perf_counter() - t0)
    bar.close()

    # --- final open-vocabulary evaluation and checkpoint ------------------------------------------
    wall = time.perf_counter() - t0
    final = run_eval(step, wall)
    checkpoint(step, wall)
    if dist.is_main:
        summary = {
            "step": step,
            "wall_minutes": wall / 60.0,
            "seen": [by_id[i].name for i in seen_ids],
            "unseen": sorted(split.unseen),
            "classifiers": {name: m.as_dict() for name, m in final.items()},
        }
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    log.close()
    cleanup_distributed()
    return 0
