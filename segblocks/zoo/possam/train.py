"""``segblocks train possam``: train PosSAM on the shapes world's seen classes, evaluate open-vocabulary.

The loop reads like the paper's training section (Sec. 4.1, App. A): set-up; data (panoptic
ground truth of the *seen* classes only: by default the training images are drawn without the
unseen classes, ``--unseen absent``; with ``--unseen background`` they appear and their pixels belong
to no target, which teaches the model to call them void -- see the model card); model
(frozen SAM and CLIP, trainable FPN, Mask2Former decoders, IoU head and LDP, trained against the seen
classes' text embeddings); AdamW with a multi-step schedule (paper: lr 1e-4, wd 0.05, x0.1 at 60%
and 80% of training); the loop (class 2.0, mask 5.0 + Dice 5.0, IoU 1.0, deep supervision); then
open-vocabulary panoptic evaluation on val with **all** classes for each classifier (LDP alone,
frozen CLIP alone, the fixed geometric ensemble, MASE), written to ``final.json``.
``--unseen-classes`` holds out another set of classes: the proxy split on which
:mod:`~segblocks.zoo.possam.calibration` chooses the ensembles' exponents.

Example (world scale, the run of the shipped weights; 800 steps in 11 minutes on one CPU thread)::

    segblocks train possam --variant tiny --image-size 128 --batch-size 8 --steps 800 \
        --time-budget-min 28 --eval-every 0 --eval-every-min 10 --val-images 100 --lr 1e-3 \
        --threads 1 --out runs/possam_v5
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from segblocks.data import (
    CATEGORIES,
    ShapesDataset,
    ShapesWorldConfig,
    add_split_argument,
    add_world_arguments,
    collate_batch,
    collate_shapes,
    split_from_args,
)
from segblocks.data.shapes.dataset import ShapesExample
from segblocks.data.shapes.sample import ShapesSample
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
from segblocks.structures import Batch, Targets
from segblocks.zoo.possam.build import DEFAULT, build_possam
from segblocks.zoo.possam.evaluate import OpenVocabMetrics, evaluate
from segblocks.zoo.possam.predictor import PosSAMPredictor

__all__ = ["UNSEEN_PROTOCOLS", "build_parser", "collate_seen", "main", "seen_targets", "seen_world"]

logger = logging.getLogger(__name__)

#: How the unseen classes may appear in training images (``--unseen``).
UNSEEN_PROTOCOLS = ("absent", "background")


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
    p.add_argument(
        "--unseen",
        default="absent",
        choices=UNSEEN_PROTOCOLS,
        help="training images: 'absent' draws them without unseen classes; 'background' lets unseen "
        "classes appear, their pixels in no target (the model then learns them as void)",
    )
    add_split_argument(p)
    add_train_arguments(p, out="runs/possam", eval_every=500, lr=4e-4)  # paper: lr 1e-4 at batch 16
    add_world_arguments(p)
    return p


def _weights(value: str) -> str | None:
    return None if value.lower() == "none" else value


def seen_world(config: ShapesWorldConfig) -> ShapesWorldConfig:
    """The same world without its split's unseen classes: no image drawn from it contains one.

    Args:
        config: the world (its ``split`` names the unseen classes).

    Returns:
        A copy of ``config`` whose ``thing_classes`` and ``stuff_classes`` are the seen ones.

    Raises:
        ValueError: when fewer seen stuff classes remain than an image's stuff regions need.
    """
    unseen = set(config.split.unseen)
    return dataclasses.replace(
        config,
        thing_classes=tuple(c for c in config.thing_classes if c not in unseen),
        stuff_classes=tuple(c for c in config.stuff_classes if c not in unseen),
    )


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


def collate_seen(examples: list[ShapesExample], seen_ids: Sequence[int]) -> Batch:
    """A training :class:`~segblocks.structures.Batch` whose targets hold the seen classes only.

    Args:
        examples: shapes-world examples (all of one image size).
        seen_ids: sorted category ids of the training vocabulary.

    Returns:
        The batch; ``extras["samples"]`` keeps the samples.
    """
    shapes = collate_shapes(examples)
    return Batch(
        images=shapes.images,
        targets=seen_targets(shapes.samples, seen_ids),
        extras={"samples": shapes.samples},
    )


def _flatten(results: dict[str, OpenVocabMetrics]) -> dict[str, float]:
    return {f"{name}/{k}": v for name, m in results.items() for k, v in m.as_dict().items()}


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = TrainOptions.from_args(args)

    # --- set-up ---------------------------------------------------------------------------
    dist = setup_process(args)
    run_dir = Path(args.out)
    device = dist.device

    # --- data: train on the seen classes, evaluate on all of them ----------------------------
    split = split_from_args(args)
    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed, split=split)
    seen_ids = sorted(split.seen_ids)
    train_world = seen_world(world) if args.unseen == "absent" else world
    train_set = ShapesDataset(train_world, split="train", length=args.train_images)
    val_set = ShapesDataset(world, split="val", length=args.val_images)
    val_loader = build_eval_loader(
        val_set,
        batch_size=args.batch_size,
        dist=dist,
        num_workers=args.num_workers,
        collate_fn=collate_batch,
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
        **parse_overrides(args.set),
    )
    model.to(device)
    counts = model.state_summary()
    logger.info("trainable parameters %.2fM, frozen %.2fM", counts["trainable"] / 1e6, counts["frozen"] / 1e6)
    predictor = PosSAMPredictor(
        model, vocabulary=[c.name for c in CATEGORIES], is_thing=[c.is_thing for c in CATEGORIES]
    )

    # --- optimizer and schedule (paper: AdamW; x0.1 at 150k and 200k of 250k iterations) --------
    optimizer = build_adamw(model, lr=args.lr, weight_decay=args.weight_decay)
    first = int(0.6 * args.steps)
    scheduler = warmup_multistep_schedule(
        optimizer,
        milestones=[first, max(first + 1, int(0.8 * args.steps))],
        warmup_steps=args.warmup_steps,
        warmup_factor=0.01,
    )

    def run_eval() -> dict[str, OpenVocabMetrics]:  # open-vocabulary PQ of every classifier, all classes
        return evaluate(
            predictor, val_loader, device=device, autocast=lambda: autocast(device, args.precision)
        )

    # --- resume, then the loop on the seen classes ----------------------------------------------
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
    train_loader = build_train_loader(  # the batch of step s is the same whether resumed or not
        train_set,
        batch_size=args.batch_size,
        dist=dist,
        seed=args.seed,
        start_step=run.step,
        num_workers=args.num_workers,
        collate_fn=functools.partial(collate_seen, seen_ids=seen_ids),
    )
    training_step = training_step_fn(model, dist)  # model.training_step, through DDP under torchrun
    model.train()
    for batch in run.progress(train_loader, desc="possam"):  # until --steps or the time budget
        with autocast(device, args.precision):
            losses = training_step(
                batch.to(device, non_blocking=True)
            )  # class, mask, dice, IoU (+ deep sup.)
        loss = sum(losses.values(), torch.zeros((), device=device))
        grad_norm = backward_step(
            loss, optimizer=optimizer, scaler=run.scaler, max_norm=args.clip_grad or None
        )
        scheduler.step()
        run.end_step(loss, losses, lr=optimizer.param_groups[0]["lr"], grad_norm=grad_norm)
        if run.eval_due():
            run.evaluate(lambda: _flatten(run_eval()))
        if run.checkpoint_due():
            run.save_checkpoint()

    # --- final open-vocabulary evaluation and checkpoint ---------------------------------------
    wall = run.wall_seconds
    final = run_eval()
    run.finish(_flatten(final), wall_seconds=wall)
    if dist.is_main:
        summary = {
            "step": run.step,
            "wall_minutes": wall / 60.0,
            "seen": [by_id[i].name for i in seen_ids],
            "unseen": sorted(split.unseen),
            "classifiers": {name: m.as_dict() for name, m in final.items()},
        }
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    cleanup_distributed()
    return 0
