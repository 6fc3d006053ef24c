"""``segblocks train mask2former-video``: Mask2Former-VIS on shapes-world clips, evaluated in linked windows.

The same model as ``segblocks train mask2former`` (backbone, pixel decoder, masked-attention decoder,
class head); the decoder attends over every frame of a training clip at once with a 3D sine encoding
and each query predicts a mask tube, matched to ground-truth tubes by Hungarian matching on costs
summed over the frames (Mask2Former-VIS trains on 2-frame clips). Validation clips are longer and run
as a long video would: in windows of ``--window`` frames whose queries are linked by matching their
embeddings (MinVIS, OMG-Seg); VIS AP, VPQ, VSS mIoU and VOS J&F are reported.

Example (world scale, the model card's run)::

    segblocks train mask2former-video --backbone regnetx_002 --image-size 96 --frames 2 \
        --val-frames 8 --window 2 --time-budget-min 28 --threads 1 --out runs/mask2former_video
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from segblocks.data import ShapesClipDataset, ShapesWorldConfig, add_world_arguments, collate_clip_batch
from segblocks.engine import (
    TrainingRun,
    TrainOptions,
    add_train_arguments,
    autocast,
    backward_step,
    build_train_loader,
    cleanup_distributed,
    setup_process,
    training_step_fn,
)
from segblocks.zoo.mask2former.evaluate_video import evaluate_video
from segblocks.zoo.mask2former.train import add_model_arguments, model_from_args, optimizer_from_args
from segblocks.zoo.mask2former.video_predictor import Mask2FormerVideoPredictor

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe."""
    p = argparse.ArgumentParser(
        prog="segblocks train mask2former-video",
        description="Train Mask2Former-VIS on shapes-world clips; evaluate VIS AP, VPQ, VSS mIoU, VOS J&F.",
    )
    add_model_arguments(p)
    p.add_argument("--frames", type=int, default=2, help="frames per training clip (Mask2Former-VIS: 2)")
    p.add_argument("--val-frames", type=int, default=8, help="frames per validation clip")
    p.add_argument("--window", type=int, default=2, help="frames per inference window (linked by queries)")
    add_train_arguments(p, out="runs/mask2former_video", eval_every=0, lr=4e-4)
    add_world_arguments(p)
    return p


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = TrainOptions.from_args(args)
    for name in ("frames", "val_frames", "window"):
        if getattr(args, name) < 1:
            raise ValueError(
                f"--{name.replace('_', '-')}: expected at least 1 frame, got {getattr(args, name)}"
            )

    # --- set-up ---------------------------------------------------------------------------
    dist = setup_process(args)
    run_dir = Path(args.out)
    device = dist.device

    # --- data: endless freshly drawn training clips, fixed longer validation clips -----------
    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    train_set = ShapesClipDataset(world, split="train", length=args.train_images, num_frames=args.frames)
    val_set = ShapesClipDataset(world, split="val", length=args.val_images, num_frames=args.val_frames)

    # --- model, optimizer and schedule (as the image recipe) ---------------------------------
    model = model_from_args(args)
    model.to(device)
    optimizer, scheduler = optimizer_from_args(model, args)
    predictor = Mask2FormerVideoPredictor(model, window=args.window)

    def run_eval() -> dict[str, float]:  # the val clips in linked windows
        with autocast(device, args.precision):
            return evaluate_video(
                predictor, (val_set[i] for i in range(len(val_set))), device=device
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
    train_loader = build_train_loader(  # the clips of step s are the same whether resumed or not
        train_set,
        batch_size=args.batch_size,
        dist=dist,
        seed=args.seed,
        start_step=run.step,
        num_workers=args.num_workers,
        collate_fn=collate_clip_batch,
    )
    training_step = training_step_fn(model, dist)
    model.train()
    for batch in run.progress(train_loader, desc="mask2former-video"):  # until --steps or the budget
        with autocast(device, args.precision):
            losses = training_step(batch.to(device, non_blocking=True))  # tube class, mask, dice
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
        summary = {"step": run.step, "wall_minutes": wall / 60.0, "window": args.window, **final}
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    cleanup_distributed()
    return 0
