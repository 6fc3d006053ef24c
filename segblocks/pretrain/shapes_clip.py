"""``segblocks train shapes-clip``: pretrain the tiny CLIP (``shapes-clip-tiny``) on the shapes world.

The model is an ordinary open_clip CLIP (a timm image tower whose last stage is dilated, so its
dense map has stride 16 -- ``shapes_plain_os16`` for the shipped ``shapes-clip-tiny``,
``shapes_resnet_os16`` for the first one, ``shapes-clip-tiny-resnet`` (``--model``) -- and a
3-layer text transformer, configs in ``segblocks/backbones/configs/clip/``), trained from scratch on
image/text pairs drawn from the shapes world's *train* split, whose captions mention every class
(the classes held out from segmentation training too, as web data would). Each step draws
``--images-per-step`` images; every thing and stuff region of them is cropped, and the first
``--full-images`` enter whole:

1. whole images against their captions: open_clip's ``ClipLoss``;
2. crops and the dense CLIP map mask-pooled over every segment of the whole images against the
   batch's distinct phrases (``"a photo of a small red star."``, ``"a photo of sand."``), each text
   true, false or unknown of an object by what the two texts state (``--phrase-matching``,
   :func:`~segblocks.pretrain.clip_losses.phrase_relations`; without it, crops join loss 1 one to one);
3. thing and stuff crops (``--views`` jittered crops per thing) and mask-pooled segments against
   the 18 class names (one random prompt template per class and step): cross-entropy over the
   class texts;
4. (``--label-head``) a linear head on the crop embeddings, plain cross-entropy against the labels;
5. the uniformity of the 18 class-name embeddings (a text-only term).

No label of an unseen class (heart, crescent, arrow, sand) is used: loss 3 takes each object's
true name from its own phrase (``--class-targets phrases``, the default; ``labels`` keeps the seen
classes' labels only), and the label head of loss 4 sees only the seen classes, so the image tower
learns the unseen ones from captions and phrases alone. The image tower and label head
train at ``--lr``, the text tower and temperature at ``--text-lr``. With ``--crop-statistics`` the
whole images are normalised with the crops' batch-norm statistics, as the frozen CLIP will be.

The weights are saved as safetensors with open_clip's key names (fp16 to keep the package small;
the label head is not saved) and load with ``OpenCLIPBackbone("shapes-clip-tiny", pretrained=PATH)``;
``--ship`` writes them where ``pretrained="shapes"`` finds them.

Example (the shipped weights, the defaults on both cores; see ``zoo/shapes-clip-tiny/README.md``)::

    segblocks train shapes-clip --out runs/shapes_clip --threads 2 --curve-every 150 --ship
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segblocks.backbones import OpenCLIPBackbone
from segblocks.backbones.checkpoints import save_state_dict_file
from segblocks.backbones.registry import WEIGHTS_DIR
from segblocks.data.shapes import CATEGORIES, ShapesWorld, ShapesWorldConfig
from segblocks.engine import (
    TrainingRun,
    TrainOptions,
    build_adamw,
    seed_everything,
    setup_distributed,
    warmup_cosine_schedule,
)
from segblocks.pretrain.clip_data import make_clip_batch
from segblocks.pretrain.clip_eval import ClipZeroShotResult, evaluate_zero_shot
from segblocks.pretrain.clip_losses import clip_losses

__all__ = [
    "MODEL_NAME",
    "MODEL_NAMES",
    "build_parser",
    "main",
    "save_clip_weights",
]

logger = logging.getLogger(__name__)

#: The open_clip model name of the tiny CLIP (the shipped one).
MODEL_NAME = "shapes-clip-tiny"
#: The configs the recipe trains: the shipped one, and the first one (``shapes_resnet_os16`` tower).
MODEL_NAMES = (MODEL_NAME, "shapes-clip-tiny-resnet")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe."""
    p = argparse.ArgumentParser(
        prog="segblocks train shapes-clip", description="Pretrain the tiny shapes-world CLIP."
    )
    p.add_argument("--out", default="runs/shapes_clip", help="output folder (weights, metrics.json)")
    p.add_argument("--model", default=MODEL_NAME, choices=MODEL_NAMES, help="the open_clip config to train")
    p.add_argument("--steps", type=int, default=800, help="optimizer steps (default: 800)")
    p.add_argument("--images-per-step", type=int, default=32, help="shapes-world images per step")
    p.add_argument(
        "--full-images",
        type=int,
        default=0,
        help="of those, the images whose whole image, caption and masks enter the losses (0: all); "
        "the crops come from every image",
    )
    p.add_argument("--crop-size", type=int, default=32, help="side of the thing/stuff crops (px)")
    p.add_argument("--views", type=int, default=2, help="jittered crops per thing and step")
    p.add_argument("--image-size", type=int, default=128, help="side of the world's images (px)")
    p.add_argument(
        "--lr", type=float, default=3e-3, help="peak AdamW learning rate of the image tower and label head"
    )
    p.add_argument(
        "--text-lr",
        type=float,
        default=2e-3,
        help="peak learning rate of the text tower and the temperature",
    )
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay")
    p.add_argument("--warmup-steps", type=int, default=20, help="linear warm-up steps")
    p.add_argument("--time-budget-min", type=float, default=29.0, help="stop after this long (0: off)")
    p.add_argument("--val-images", type=int, default=200, help="val images of the final evaluation")
    p.add_argument(
        "--curve-every", type=int, default=0, help="evaluate every N steps for the learning curve (0: off)"
    )
    p.add_argument("--curve-images", type=int, default=50, help="val images of each learning-curve point")
    p.add_argument(
        "--crop-phrases",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pair thing crops with their phrases in the contrastive loss",
    )
    p.add_argument(
        "--phrase-weight",
        type=float,
        default=1.0,
        help="weight of the caption/phrase ClipLoss (the only signal for the unseen classes)",
    )
    p.add_argument(
        "--class-weight",
        type=float,
        default=1.0,
        help="weight of the class-name losses (crop_class, region_class)",
    )
    p.add_argument(
        "--class-targets",
        choices=("labels", "phrases"),
        default="phrases",
        help="the class-name losses' true names: the name each object's own phrase states, every "
        "class alike (default; see clip_losses.clip_losses), or the labels of seen classes only",
    )
    p.add_argument(
        "--crop-statistics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="normalise whole images with the batch-norm statistics the crops train (see running_batch_norm)",
    )
    p.add_argument(
        "--phrase-matching",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pair crops and mask-pooled segments with the distinct phrases by what the texts say "
        "(several true texts per object; see clip_losses.phrase_relations) instead of one-to-one",
    )
    p.add_argument(
        "--uniformity-weight",
        type=float,
        default=1.0,
        help="weight of the class-name embeddings' uniformity (a text-only term)",
    )
    p.add_argument("--label-weight", type=float, default=2.0, help="weight of the label head's cross-entropy")
    p.add_argument(
        "--region-label-weight",
        type=float,
        default=0.0,
        help="weight of the label head's cross-entropy on the mask-pooled segments of the whole "
        "images (seen classes; 0: off)",
    )
    p.add_argument(
        "--region-crop-weight",
        type=float,
        default=0.0,
        help="weight of the pull of each thing's mask-pooled embedding towards its crops' (0: off)",
    )
    p.add_argument(
        "--label-head",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train a linear label head on the crop embeddings (seen classes; not saved)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the world and of the initialisation")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--ship", action="store_true", help="also write the weights into the package")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def save_clip_weights(backbone: OpenCLIPBackbone, path: str | Path, *, metadata: dict[str, str]) -> Path:
    """Save the CLIP model's state dict (open_clip key names) as fp16 safetensors.

    Args:
        backbone: the trained backbone.
        path: the ``.safetensors`` file to write (parents are created).
        metadata: string metadata stored in the file header (recipe options, metrics).

    Returns:
        The path written.
    """
    return save_state_dict_file(backbone.clip.state_dict(), path, metadata=metadata)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the recipe: train, evaluate zero-shot on val, save the weights and ``metrics.json``.

    Args:
        argv: command-line arguments (see :func:`build_parser`).

    Returns:
        0 on success.

    Raises:
        ValueError: on invalid options.
    """
    args = build_parser().parse_args(argv)
    for name in (
        "steps",
        "images_per_step",
        "crop_size",
        "image_size",
        "val_images",
        "curve_images",
        "views",
        "threads",
    ):
        if getattr(args, name) < 1:
            raise ValueError(
                f"--{name.replace('_', '-')}: expected a positive int, got {getattr(args, name)}"
            )
    if not 0 <= args.full_images <= args.images_per_step:
        raise ValueError(
            f"--full-images: expected an int in [0, --images-per-step={args.images_per_step}], "
            f"got {args.full_images}"
        )
    if args.image_size % 32 or args.crop_size % 32:
        raise ValueError(
            f"--image-size, --crop-size: expected multiples of 32, got {args.image_size}, {args.crop_size}"
        )
    for name in ("lr", "text_lr"):
        value = getattr(args, name)
        if not value > 0:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive learning rate, got {value}")
    for name in ("region_label_weight", "region_crop_weight"):
        if not getattr(args, name) >= 0:
            raise ValueError(f"--{name.replace('_', '-')}: expected a weight >= 0, got {getattr(args, name)}")
    if args.region_label_weight > 0 and not args.label_head:
        raise ValueError("--region-label-weight: needs the label head (drop --no-label-head)")
    torch.set_num_threads(args.threads)
    dist = setup_distributed(device="cpu")
    seed_everything(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.jsonl").write_text("")

    # Data: the train split for pairs, the val split for the zero-shot evaluation.
    config = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    train_world, val_world = ShapesWorld(config, split="train"), ShapesWorld(config, split="val")
    rng = np.random.default_rng(args.seed)

    # Model, optimizer, schedule.
    backbone = OpenCLIPBackbone(args.model, pretrained=None, frozen=False)
    backbone.train()
    label_head = nn.Linear(backbone.embed_dim, len(CATEGORIES)) if args.label_head else None
    # The image tower (and the label head) may take a higher rate than the text transformer, whose
    # shape names stay merged at 1e-2.
    text_lr = args.text_lr
    optimizer = build_adamw(
        nn.ModuleDict({"backbone": backbone, "label_head": label_head or nn.Identity()}),
        lr=text_lr,
        weight_decay=args.weight_decay,
        backbone_prefixes=("backbone.clip.visual.", "label_head."),
        backbone_lr_multiplier=args.lr / text_lr,
    )
    schedule = warmup_cosine_schedule(
        optimizer, total_steps=args.steps, warmup_steps=min(args.warmup_steps, args.steps - 1)
    )

    # Loop (the engine's helpers keep the time budget, the loss log and the learning-curve timing).
    model = nn.ModuleDict({"backbone": backbone, "label_head": label_head or nn.Identity()})
    options = TrainOptions(
        steps=args.steps,
        batch_size=args.images_per_step,
        time_budget_min=args.time_budget_min or None,
        eval_every=args.curve_every,
        log_every=10,
        checkpoint_every=0,
        seed=args.seed,
    )
    run = TrainingRun.start(
        model, optimizer=optimizer, scheduler=schedule, options=options, run_dir=out, dist=dist
    )
    history: list[dict[str, float]] = []
    curve: list[dict[str, float]] = []  # zero-shot accuracy against thing crops seen
    things_seen = 0
    for step in run.progress(range(args.steps), desc="shapes-clip", enabled=not args.no_progress):
        indices = range(step * args.images_per_step, (step + 1) * args.images_per_step)
        batch = make_clip_batch(
            train_world,
            indices,
            rng,
            crop_size=args.crop_size,
            views=args.views,
            full_images=args.full_images or None,
        )
        losses = clip_losses(
            backbone,
            batch,
            rng,
            unseen_ids=config.split.unseen_ids,
            crop_phrases=args.crop_phrases,
            label_head=label_head,
            crop_statistics=args.crop_statistics,
            phrase_matching=args.phrase_matching,
            class_targets=args.class_targets,
            region_labels=args.region_label_weight > 0,
            region_crop=args.region_crop_weight > 0,
        )
        weights = {
            "caption": args.phrase_weight,
            "crop_phrase": args.phrase_weight,
            "region_phrase": args.phrase_weight,
            "crop_label": args.label_weight,
            "region_label": args.region_label_weight,
            "region_crop": args.region_crop_weight,
            "name_uniformity": args.uniformity_weight,
            "crop_class": args.class_weight,
            "region_class": args.class_weight,
        }
        loss = sum((weights.get(k, 1.0) * v for k, v in losses.items()), torch.zeros(()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # open_clip clamps the temperature at 100
            backbone.clip.logit_scale.clamp_(0, math.log(100))
        things_seen += len(batch.thing_texts) * args.views
        run.end_step(loss, losses, lr=optimizer.param_groups[0]["lr"])
        history.append({"step": run.step, "loss": loss.item(), **{k: v.item() for k, v in losses.items()}})
        if run.eval_due():  # a learning-curve point
            point = run.evaluate(
                lambda: evaluate_zero_shot(
                    backbone, val_world, num_images=args.curve_images, crop_size=args.crop_size
                ).as_dict()
            )
            curve.append({"step": run.step, "thing_crops_seen": things_seen, **point})
            with (out / "curve.jsonl").open("a") as f:  # written as it grows, to follow a long run
                f.write(json.dumps(curve[-1]) + "\n")
    if run.step < args.steps:
        logger.warning("time budget reached after %d steps", run.step)
    train_minutes = run.wall_seconds / 60

    # Evaluation and weights.
    result: ClipZeroShotResult = evaluate_zero_shot(
        backbone, val_world, num_images=args.val_images, crop_size=args.crop_size
    )
    run.finish(result.as_dict(), wall_seconds=train_minutes * 60, checkpoint=False)
    metrics = {
        "model": args.model,
        "steps": len(history),
        "train_minutes": round(train_minutes, 2),
        "final_loss": history[-1],
        "val": result.as_dict(),
        "options": vars(args),
    }
    metadata = {"recipe": "segblocks train shapes-clip", "metrics": json.dumps(metrics)}
    paths = [save_clip_weights(backbone, out / "shapes.safetensors", metadata=metadata)]
    if args.ship:
        paths.append(
            save_clip_weights(backbone, WEIGHTS_DIR / args.model / "shapes.safetensors", metadata=metadata)
        )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    logger.info("shapes-clip: %s; weights at %s", result.as_dict(), [str(p) for p in paths])
    return 0
