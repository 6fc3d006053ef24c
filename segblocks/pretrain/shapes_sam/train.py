"""``segblocks train shapes-sam``: train the tiny SAM on shapes-world promptable segmentation.

The loop reads like SAM's training section: set-up, data (freshly drawn images, several prompts of
three kinds per image), model (segment_anything's ``Sam`` at a small size), AdamW with linear
warm-up and cosine decay (the image encoder at 0.3x the rate of the prompt encoder and decoder),
the loss (per-pixel cross-entropy 1 : dice 1 -- SAM uses focal 20 : dice 1,
``--focal-weight 20 --focal-gamma 2`` -- on the best of the 3 outputs for a single point, on the
single output for a box or several points, plus IoU-prediction MSE), evaluation
(1-point oracle, 1-point top-IoU and 1-box mIoU on val) and the weights (safetensors, whole-``Sam``
key names). One process, CPU or one GPU.

Example (the model card's run)::

    segblocks train shapes-sam --threads 1 --time-budget-min 27.5 --out runs/shapes-sam
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from segblocks.data import ShapesWorld, ShapesWorldConfig
from segblocks.engine import (
    TrainingRun,
    TrainOptions,
    backward_step,
    build_adamw,
    seed_everything,
    setup_distributed,
    setup_logging,
    warmup_cosine_schedule,
)
from segblocks.pretrain.shapes_sam.evaluate import evaluate_shapes_sam
from segblocks.pretrain.shapes_sam.losses import SamLossWeights
from segblocks.pretrain.shapes_sam.model import (
    SHAPES_SAM_MODEL,
    ShapesSamDecoderConfig,
    build_shapes_sam,
    init_pos_embed_sincos,
    save_shapes_sam,
)
from segblocks.pretrain.shapes_sam.prompts import MAX_BOX_JITTER, PromptCounts, sample_training_prompts
from segblocks.pretrain.shapes_sam.step import sam_training_step

__all__ = ["build_parser", "build_sam_optimizer", "main"]

logger = logging.getLogger(__name__)

#: The validation world is fixed (seed 0) whatever ``--seed`` is, so runs are comparable.
VAL_WORLD_SEED = 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe.

    Returns:
        The parser (``segblocks train shapes-sam --help`` prints it).
    """
    p = argparse.ArgumentParser(
        prog="segblocks train shapes-sam", description="Train the tiny SAM on the shapes world."
    )
    p.add_argument("--model-name", default=SHAPES_SAM_MODEL, help="registered SAM encoder config")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps (the schedule's length)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop training after this wall time")
    p.add_argument("--batch-size", type=int, default=3, help="images per step")
    p.add_argument(
        "--num-things",
        type=int,
        nargs=2,
        default=(3, 6),
        metavar=("MIN", "MAX"),
        help="things per training image (the val world has 1-6)",
    )
    p.add_argument("--points", type=int, default=4, help="single-point prompts per image (multi-mask)")
    p.add_argument("--boxes", type=int, default=3, help="box prompts per image")
    p.add_argument("--multi-points", type=int, default=1, help="several-point prompts per image")
    p.add_argument(
        "--box-jitter",
        type=float,
        default=PromptCounts.box_jitter,
        help=f"largest move of a training box side, as a fraction of the box size (0 to {MAX_BOX_JITTER})",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate")
    p.add_argument(
        "--encoder-lr-mult", type=float, default=0.3, help="image encoder's lr as a multiple of --lr"
    )
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (SAM: 0.1)")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--focal-alpha", type=float, default=-1.0, help="focal positive weight (-1: none)")
    p.add_argument(
        "--focal-weight", type=float, default=1.0, help="pixel loss : dice = this : 1 (SAM: focal 20 : 1)"
    )
    p.add_argument("--focal-gamma", type=float, default=0.0, help="focal exponent (0: cross-entropy; SAM: 2)")
    p.add_argument("--clip-grad", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    p.add_argument("--decoder-mlp-dim", type=int, default=ShapesSamDecoderConfig.mlp_dim)
    p.add_argument("--decoder-heads", type=int, default=ShapesSamDecoderConfig.num_heads)
    p.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: only at the end)")
    p.add_argument("--eval-images", type=int, default=32, help="val images of the periodic evaluations")
    p.add_argument("--val-images", type=int, default=200, help="val images of the final evaluation")
    p.add_argument("--store-dtype", default="float16", choices=("float16", "float32"))
    p.add_argument("--out", default="runs/shapes-sam", help="folder for shapes.safetensors and metrics.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm bar")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Validate the parsed options.

    Args:
        args: the namespace from :func:`build_parser`.

    Raises:
        ValueError: naming the first bad option.
    """
    positive = ("steps", "batch_size", "eval_images", "val_images", "decoder_mlp_dim", "decoder_heads")
    for name in positive:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected an int >= 1, got {getattr(args, name)}")
    for name in ("points", "boxes", "multi_points", "warmup_steps", "eval_every", "seed"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')}: expected an int >= 0, got {getattr(args, name)}")
    lo, hi = args.num_things
    if not 1 <= lo <= hi:
        raise ValueError(f"--num-things: expected 1 <= MIN <= MAX, got {lo} {hi}")
    if args.points + args.boxes + args.multi_points == 0:
        raise ValueError("--points, --boxes, --multi-points: at least one prompt per image is needed")
    for name in ("lr", "encoder_lr_mult"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive number, got {value}")
    if args.weight_decay < 0 or args.clip_grad < 0:
        raise ValueError(
            f"--weight-decay, --clip-grad: expected >= 0, got {args.weight_decay}, {args.clip_grad}"
        )
    if args.focal_weight < 0 or args.focal_gamma < 0:
        raise ValueError(
            f"--focal-weight, --focal-gamma: expected >= 0, got {args.focal_weight}, {args.focal_gamma}"
        )
    if not 0.0 <= args.box_jitter <= MAX_BOX_JITTER:
        raise ValueError(f"--box-jitter: expected a fraction in [0, {MAX_BOX_JITTER}], got {args.box_jitter}")
    if args.time_budget_min is not None and not args.time_budget_min > 0:
        raise ValueError(
            f"--time-budget-min: expected a positive number of minutes, got {args.time_budget_min}"
        )
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected an int >= 1, got {args.threads}")


def build_sam_optimizer(
    sam: torch.nn.Module, *, lr: float, encoder_lr_mult: float, weight_decay: float
) -> torch.optim.AdamW:
    """The recipe's AdamW: the image encoder at ``encoder_lr_mult`` x ``lr``, the rest at ``lr``.

    Norms and biases get no weight decay (:func:`~segblocks.engine.build_adamw`'s rule).

    Args:
        sam: the ``Sam`` to train (its encoder's parameters are named ``image_encoder.*``).
        lr: the prompt encoder's and mask decoder's peak rate.
        encoder_lr_mult: the image encoder's rate as a multiple of ``lr`` (> 0).
        weight_decay: AdamW weight decay.

    Returns:
        The optimizer; every group carries its own ``lr``.

    Raises:
        ValueError: on a non-positive ``lr`` or ``encoder_lr_mult``, or as ``build_adamw``.
    """
    for name, value in (("lr", lr), ("encoder_lr_mult", encoder_lr_mult)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name}: expected a positive number, got {value}")
    return build_adamw(
        sam,
        lr=lr,
        weight_decay=weight_decay,
        betas=(0.9, 0.999),
        backbone_prefixes=("image_encoder.",),
        backbone_lr_multiplier=encoder_lr_mult,
    )


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``.

    Args:
        argv: the options after ``segblocks train shapes-sam``.

    Returns:
        The exit status (0).

    Raises:
        ValueError: on bad options (the CLI prints the message and exits with 2).
    """
    args = build_parser().parse_args(argv)
    check_args(args)

    # --- set-up ---------------------------------------------------------------------------
    dist = setup_distributed(device=args.device)
    if dist.world_size > 1:
        raise ValueError("shapes-sam: a single-process recipe; run it without torchrun")
    setup_logging(dist)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = dist.device
    run_dir = Path(args.out)

    # --- model ----------------------------------------------------------------------------
    decoder_config = ShapesSamDecoderConfig(mlp_dim=args.decoder_mlp_dim, num_heads=args.decoder_heads)
    sam = build_shapes_sam(None, model_name=args.model_name, decoder_config=decoder_config).to(device)
    init_pos_embed_sincos(sam)  # SAM starts from MAE, whose position embeddings are 2D sine-cosine
    size = sam.image_encoder.img_size
    logger.info("Sam %s: %.2fM parameters", args.model_name, sum(p.numel() for p in sam.parameters()) / 1e6)

    # --- data: fresh training images every step, a fixed validation set -------------------
    train_config = ShapesWorldConfig(
        image_size=(size, size), num_things=tuple(args.num_things), seed=args.seed
    )
    train_world = ShapesWorld(train_config, split="train")
    val_world = ShapesWorld(ShapesWorldConfig(image_size=(size, size), seed=VAL_WORLD_SEED), split="val")
    val_samples = [val_world.sample(i) for i in range(args.val_images)]
    counts = PromptCounts(
        points=args.points, boxes=args.boxes, multi_points=args.multi_points, box_jitter=args.box_jitter
    )
    rng = np.random.default_rng(args.seed)
    weights = SamLossWeights(
        focal=args.focal_weight, focal_alpha=args.focal_alpha, focal_gamma=args.focal_gamma
    )

    # --- optimizer and schedule: AdamW, linear warm-up, cosine decay -----------------------
    optimizer = build_sam_optimizer(
        sam, lr=args.lr, encoder_lr_mult=args.encoder_lr_mult, weight_decay=args.weight_decay
    )
    scheduler = warmup_cosine_schedule(
        optimizer,
        total_steps=args.steps,
        warmup_steps=min(args.warmup_steps, args.steps - 1),
        warmup_factor=0.01,
        min_factor=0.02,
    )
    # no resume and no checkpoints: the run ends by writing the weights
    options = TrainOptions(
        steps=args.steps,
        batch_size=args.batch_size,
        time_budget_min=args.time_budget_min,
        clip_grad=args.clip_grad,
        eval_every=args.eval_every,
        log_every=10,
        checkpoint_every=0,
        seed=args.seed,
    )
    run = TrainingRun.start(
        sam, optimizer=optimizer, scheduler=scheduler, options=options, run_dir=run_dir, dist=dist,
        args=vars(args), tensorboard=False,
    )  # fmt: skip

    # --- loop -----------------------------------------------------------------------------
    sam.train()
    for step in run.progress(range(args.steps), desc="shapes-sam", enabled=args.progress):
        samples = [train_world.sample(step * args.batch_size + b) for b in range(args.batch_size)]
        prompts = [sample_training_prompts(s, rng, counts) for s in samples]  # per image, its prompt groups
        images = torch.stack([s.image_tensor() for s in samples]).to(device)
        losses = sam_training_step(sam, images, prompts, weights)  # focal (or CE), dice, IoU MSE
        loss = sum(losses.values())
        assert isinstance(loss, torch.Tensor)
        grad_norm = backward_step(loss, optimizer=optimizer, max_norm=args.clip_grad or None)
        scheduler.step()
        run.end_step(loss, losses, lr=optimizer.param_groups[0]["lr"], grad_norm=grad_norm)
        if run.eval_due() and run.step < args.steps:  # the final evaluation follows the last step
            run.evaluate(lambda: evaluate_shapes_sam(sam, val_samples[: args.eval_images]).as_dict())
    if run.step < args.steps:
        logger.warning(
            "time budget reached at step %d of %d; the schedule did not finish", run.step, args.steps
        )
    step = run.step
    train_seconds = run.wall_seconds

    # --- final evaluation and weights ---------------------------------------------------------
    final = evaluate_shapes_sam(sam, val_samples)
    run.finish(final.as_dict(), wall_seconds=train_seconds, checkpoint=False)
    weights_path = save_shapes_sam(sam, run_dir / "shapes.safetensors", dtype=args.store_dtype)
    summary = {
        "model_name": args.model_name,
        "steps": step,
        "train_minutes": train_seconds / 60.0,
        "total_minutes": run.wall_seconds / 60.0,
        **final.as_dict(),
        "val_world_seed": VAL_WORLD_SEED,
        "weights": str(weights_path),
        "weights_bytes": weights_path.stat().st_size,
        "decoder_config": asdict(decoder_config),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return 0
