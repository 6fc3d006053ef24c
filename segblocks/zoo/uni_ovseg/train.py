"""``segblocks train uni-ovseg``: both stages of Uni-OVSeg on unpaired shapes-world data, one command.

The loop reads like the paper's training section (Sec. 3.3 and 4.1):

1. **Stage 1, image-mask pairs without labels** (the SA-1B role): images with every mask they have
   (things, parts, stuff regions) and no class name. Point prompts (half inside random masks, half
   anywhere) answer with 4 granularities matched many-to-many to the masks that contain the point;
   box prompts answer with one mask, matched to their own. BCE 2 / Dice 1 / IoU 1 on sampled points,
   deep supervision. Everything but the frozen CLIP and the adapter trains (AdamW, multi-step decay).
2. **Stage 2, image-text pairs without masks** (the web-caption role), on *other* images: the trained
   mask branch proposes masks from a point grid; their frozen-CLIP region embeddings, averaged over
   the multi-scale ensemble's input sizes, are matched to the caption's entities (parsed from the
   noisy caption = web text, or the clean caption = refined text); the multi-scale LoRA adapter
   learns to name each confident mask by its entity among every entity of the batch (``align_loss``:
   contrastive at world scale; the paper's cosine pull, Eq. 8, selectable). Only the adapter trains.
3. **Evaluation** on val with all 18 class names: open-vocabulary semantic mIoU and PQ with and
   without the adapter, promptable 1-point / 1-box mIoU, written to ``final.json``.

:func:`~segblocks.zoo.uni_ovseg.data.check_unpaired` runs before and after training: no training
image is ever served with both its masks and its text.

Example (world scale, the one command of the shipped weights)::

    segblocks train uni-ovseg --image-size 128 --batch-size 8 --steps 1102 \
        --align-steps 200 --align-batch-size 8 --caption clean --val-images 50 \
        --threads 1 --log-every 20 --checkpoint-every 0 --clip-grad 1.0 --warmup-steps 50 \
        --train-images 20000 --text-images 20000 --out runs/uni_ovseg
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
from pathlib import Path

import torch

from segblocks.data import ShapesWorld, ShapesWorldConfig, add_world_arguments
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
from segblocks.zoo.uni_ovseg.build import DEFAULT, build_uni_ovseg
from segblocks.zoo.uni_ovseg.data import (
    CAPTIONS,
    ImageMaskDataset,
    ImageTextDataset,
    check_unpaired,
    collate_image_mask,
    collate_image_text,
)
from segblocks.zoo.uni_ovseg.evaluate import evaluate_open_vocab, evaluate_prompts
from segblocks.zoo.uni_ovseg.predictor import UniOVSegPredictor

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe (``--steps``/``--time-budget-min`` are stage 1's)."""
    p = argparse.ArgumentParser(
        prog="segblocks train uni-ovseg",
        description="Train Uni-OVSeg's two stages on unpaired image-mask and image-text pairs; evaluate open-vocabulary.",
    )
    p.add_argument("--variant", default="tiny", choices=("tiny", "convnext_large"))
    p.add_argument("--clip-pretrained", default=DEFAULT, help="CLIP weights: tag, file, 'none' or 'default'")
    p.add_argument("--text-images", type=int, default=100000, help="stage-2 images (after the stage-1 ones)")
    p.add_argument(
        "--caption", default="noisy", choices=CAPTIONS, help="noisy = web text, clean = refined text"
    )
    p.add_argument(
        "--no-ensemble",
        dest="ensemble",
        action="store_false",
        help="match masks and entities at one input size",
    )
    p.add_argument("--align-steps", type=int, default=200, help="stage-2 optimizer steps (upper bound)")
    p.add_argument("--align-minutes", type=float, default=None, help="stage-2 time budget")
    p.add_argument("--align-lr", type=float, default=1e-3, help="stage-2 (adapter) learning rate")
    p.add_argument("--align-batch-size", type=int, default=8)
    p.add_argument(
        "--init", default=None, help="start from these weights (a run's checkpoint or shipped file)"
    )
    p.add_argument(
        "--skip-stage1",
        action="store_true",
        help="only stage 2, on the mask branch of --init (the ablations)",
    )
    p.add_argument(
        "--stop-at-step",
        type=int,
        default=None,
        help="end stage 1 after this many steps, the lr schedule still spanning --steps (the shipped "
        "run: 551 of 5000, where its 10-minute budget ended; a step, unlike a time budget, reproduces)",
    )
    add_train_arguments(p, out="runs/uni_ovseg", eval_every=0, lr=1e-3)  # paper: lr 1e-4 at batch 56
    add_world_arguments(p, image_size=128)
    return p


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = TrainOptions.from_args(args)

    # --- set-up ------------------------------------------------------------------------------
    dist = setup_process(args)
    run_dir = Path(args.out)
    device = dist.device

    # --- data: disjoint images for masks and for texts; validation with every class -------------
    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    mask_set = ImageMaskDataset(world, start=0, length=args.train_images)
    text_set = ImageTextDataset(world, start=args.train_images, length=args.text_images, caption=args.caption)
    check_unpaired(mask_set, text_set)
    val = [ShapesWorld(world, split="val").sample(i) for i in range(args.val_images)]

    # --- model ---------------------------------------------------------------------------------
    weights = None if str(args.clip_pretrained).lower() == "none" else args.clip_pretrained
    model = build_uni_ovseg(args.variant, clip_pretrained=weights, **parse_overrides(args.set))
    if args.init:
        from segblocks.zoo.uni_ovseg.shipped import load_trained_weights

        load_trained_weights(model, args.init)
    if args.skip_stage1 and not args.init:
        raise ValueError("--skip-stage1: needs --init (the stage-1 weights to align)")
    if args.stop_at_step is not None and args.stop_at_step < 1:
        raise ValueError(f"--stop-at-step: expected a step >= 1, got {args.stop_at_step}")
    model.to(device)
    cfg = model.config

    # --- stage 1: image-mask pairs, everything but the CLIP and the adapter ------------------------
    for p in model.adapter.trainable_parameters():
        p.requires_grad_(False)
    optimizer = build_adamw(model, lr=args.lr, weight_decay=args.weight_decay)
    first = int(0.85 * args.steps)  # released config: x0.1 at 85 % and 95 % of training
    scheduler = warmup_multistep_schedule(
        optimizer, milestones=[first, max(first + 1, int(0.95 * args.steps))], warmup_steps=args.warmup_steps
    )
    run = TrainingRun.start(
        model,
        optimizer=optimizer,
        scheduler=scheduler,
        options=options,
        run_dir=run_dir / "stage1",
        dist=dist,
        args=vars(args),
    )
    loader = build_train_loader(
        mask_set,
        batch_size=args.batch_size,
        dist=dist,
        seed=args.seed,
        start_step=run.step,
        num_workers=args.num_workers,
        collate_fn=functools.partial(
            collate_image_mask, num_points=cfg.train_points, num_boxes=cfg.train_boxes, seed=args.seed
        ),
    )
    training_step = training_step_fn(model, dist)
    model.train()
    for batch in run.progress(loader if not args.skip_stage1 else [], desc="uni-ovseg stage 1"):
        with autocast(device, args.precision):
            losses = training_step(batch.to(device, non_blocking=True))  # point/box BCE, Dice, IoU
        loss = sum(losses.values(), torch.zeros((), device=device))
        grad_norm = backward_step(
            loss, optimizer=optimizer, scaler=run.scaler, max_norm=args.clip_grad or None
        )
        scheduler.step()
        run.end_step(loss, losses, lr=optimizer.param_groups[0]["lr"], grad_norm=grad_norm)
        if run.checkpoint_due():
            run.save_checkpoint()
        if args.stop_at_step is not None and run.step >= args.stop_at_step:
            break
    stage1_wall = run.wall_seconds
    prompt_metrics = evaluate_prompts(model, val)
    run.finish(
        {f"prompt/{k}": v for k, v in prompt_metrics.as_dict().items()},
        wall_seconds=stage1_wall,
        checkpoint=not args.skip_stage1,
    )

    # --- stage 2: image-text pairs, only the adapter ---------------------------------------------
    model.requires_grad_(False)
    adapter_params = model.adapter.trainable_parameters()
    for p in adapter_params:
        p.requires_grad_(True)
    align_opt = torch.optim.AdamW(adapter_params, lr=args.align_lr, weight_decay=0.0)
    align_options = dataclasses.replace(
        options, steps=args.align_steps, time_budget_min=args.align_minutes, batch_size=args.align_batch_size
    )
    run2 = TrainingRun.start(
        model,
        optimizer=align_opt,
        scheduler=None,
        options=align_options,
        run_dir=run_dir / "stage2",
        dist=dist,
        args=vars(args),
    )
    text_loader = build_train_loader(
        text_set,
        batch_size=args.align_batch_size,
        dist=dist,
        seed=args.seed + 1,
        start_step=run2.step,
        num_workers=args.num_workers,
        collate_fn=collate_image_text,
    )
    proposer = UniOVSegPredictor(model, grid_size=cfg.align_grid_size)
    for batch in run2.progress(text_loader, desc="uni-ovseg stage 2"):
        images = batch.images.to(device)
        model.eval()  # the mask branch proposes; nothing of it trains here
        masks = [p.masks for p in proposer.batch_proposals(images)]
        losses, stats = model.alignment_losses(
            images, masks, batch.extras["entities"], ensemble=args.ensemble
        )
        loss = losses["loss_align"]
        grad_norm = backward_step(loss, optimizer=align_opt, scaler=run2.scaler, max_norm=None)
        stat_tensors = {k: torch.tensor(v) for k, v in stats.items()}
        run2.end_step(
            loss, {**losses, **stat_tensors}, lr=align_opt.param_groups[0]["lr"], grad_norm=grad_norm
        )
        if run2.checkpoint_due():
            run2.save_checkpoint()
    check_unpaired(mask_set, text_set)  # what was actually served, too
    wall = run2.wall_seconds

    # --- final open-vocabulary evaluation (all 18 classes) and checkpoint -------------------------
    predictor = UniOVSegPredictor(model)
    adapted = evaluate_open_vocab(predictor, val, adapted=True)
    frozen = evaluate_open_vocab(predictor, val, adapted=False)
    final = {
        **{f"open_vocab/{k}": v for k, v in adapted.as_dict().items()},
        **{f"open_vocab_frozen_clip/{k}": v for k, v in frozen.as_dict().items()},
        **{f"prompt/{k}": v for k, v in prompt_metrics.as_dict().items()},
    }
    run2.finish(final, wall_seconds=wall)
    if dist.is_main:
        summary = {
            "stage1_steps": run.step,
            "stage1_minutes": stage1_wall / 60.0,
            "stage2_steps": run2.step,
            "stage2_minutes": wall / 60.0,
            "caption": args.caption,
            "ensemble": args.ensemble,
            "open_vocab": adapted.as_dict(),
            "open_vocab_frozen_clip": frozen.as_dict(),
            "prompt": prompt_metrics.as_dict(),
        }
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    cleanup_distributed()
    return 0
