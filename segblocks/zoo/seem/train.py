"""``segblocks train seem``: generic panoptic + referring + interactive segmentation on the shapes world.

The loop reads like SEEM's training section (paper Sec. 3.4, supplementary C.1, REFERENCE 2.4):
set-up; data (panoptic targets of every class; per image up to 4 segments with a visual prompt whose
type is drawn evenly from point / polygon / scribble / circle, and up to 2 referring expressions as
text prompts, some composed with a click); the model (frozen CLIP backbone and text encoder,
trainable pixel decoder and SEEM decoder); AdamW with SEEM's step schedule (x0.1 at 88.9% and
96.3%); then each step encodes the images once, runs ``n ~ U{0..5}`` interaction rounds without
gradients (each adds the simulated next click to every visual prompt and turns the answer into the
memory prompt), and one pass with gradients for every loss (generic 2 / 5 / 5; prompts BCE 1, Dice 1,
candidate choice 0.4). The final evaluation (interactive NoC on the point-first protocol, referring,
PQ) goes to ``final.json``; ``segblocks eval seem`` gives the full table.

Example (world scale, the run of the shipped weights, one CPU thread)::

    segblocks train seem --image-size 128 --batch-size 4 --steps 1200 --time-budget-min 13 \
        --eval-every 0 --val-images 20 --lr 5e-4 --threads 1 --out runs/seem/world
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from segblocks.data import CATEGORIES, ShapesDataset, ShapesWorld, ShapesWorldConfig, add_world_arguments
from segblocks.data.shapes.dataset import ShapesExample
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
    warmup_multistep_schedule,
)
from segblocks.structures import Batch
from segblocks.zoo.seem.build import DEFAULT, build_seem
from segblocks.zoo.seem.evaluate import evaluate_generic, evaluate_interactive, evaluate_referring
from segblocks.zoo.seem.interaction import answer_masks, simulate_next_round
from segblocks.zoo.seem.training_prompts import collate_prompts, image_prompts

__all__ = ["build_parser", "collate_seem", "main"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the recipe."""
    p = argparse.ArgumentParser(
        prog="segblocks train seem",
        description="Train SEEM (generic + referring + interactive) on the shapes world.",
    )
    p.add_argument("--variant", default="tiny", help="a SEEM variant (tiny; paper scale: focal_t, ...)")
    p.add_argument("--clip-pretrained", default=DEFAULT, help="CLIP weights: tag, file, 'none' or 'default'")
    p.add_argument(
        "--max-rounds", type=int, default=5, help="n ~ U{0..max} rounds without gradients (SEEM: 5)"
    )
    p.add_argument("--max-objects", type=int, default=4, help="visual prompts per image (SEEM: up to 10)")
    p.add_argument("--max-referring", type=int, default=2, help="text prompts per image")
    p.add_argument("--composition-rate", type=float, default=0.3, help="text prompts that also get a click")
    p.add_argument("--no-memory", action="store_true", help="train without memory prompts (ablation)")
    p.add_argument(
        "--eval-clicks", type=int, default=20, help="click cap of the final interactive evaluation"
    )
    add_train_arguments(p, out="runs/seem", eval_every=0, lr=5e-4)  # paper: lr 1e-4 at batch 16
    add_world_arguments(p, image_size=128)
    return p


def collate_seem(
    examples: list[ShapesExample], rng: np.random.Generator, *, max_rounds: int, **prompt_options: object
) -> Batch:
    """A training batch: panoptic targets, and in ``extras`` the prompts (``"prompts"``, a
    :class:`~segblocks.zoo.seem.PromptBatch`), their targets (``"prompt_targets"``), which prompts
    take clicks (``"clickable"``) and the number of gradient-free rounds (``"rounds"``).

    Args:
        examples: shapes-world examples of one image size.
        rng: the sampler's random generator.
        max_rounds: rounds are drawn from ``0..max_rounds``.
        **prompt_options: options of :func:`~segblocks.zoo.seem.training_prompts.image_prompts`.
    """
    images = torch.stack([e.image for e in examples])
    size = (int(images.shape[-2]), int(images.shape[-1]))
    drawn = [image_prompts(e.sample, rng, **prompt_options) for e in examples]  # type: ignore[arg-type]
    prompts, prompt_targets, clickable = collate_prompts(drawn, size)
    return Batch(
        images=images,
        targets=[e.targets for e in examples],
        extras={
            "prompts": prompts,
            "prompt_targets": prompt_targets,
            "clickable": clickable,
            "rounds": int(rng.integers(0, max_rounds + 1)),
        },
    )


def main(argv: list[str]) -> int:
    """Run the recipe with command-line arguments ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    options = TrainOptions.from_args(args)

    # --- set-up ---------------------------------------------------------------------------
    dist = setup_process(args)
    run_dir = Path(args.out)
    device = dist.device

    # --- data: every class; prompts drawn per batch ----------------------------------------------
    world = ShapesWorldConfig(image_size=(args.image_size, args.image_size), seed=args.seed)
    train_set = ShapesDataset(world, split="train", length=args.train_images)
    val_world = ShapesWorld(world, split="val")
    val_samples = [val_world.sample(i) for i in range(args.val_images)]
    rng = np.random.default_rng(args.seed + 1000 * dist.rank)

    def collate(examples: list[ShapesExample]) -> Batch:
        return collate_seem(
            examples,
            rng,
            max_rounds=args.max_rounds,
            max_objects=args.max_objects,
            max_referring=args.max_referring,
            composition_rate=args.composition_rate,
        )

    # --- model: the vocabulary is every class name -----------------------------------------------
    model = build_seem(
        args.variant,
        vocabulary=[c.name for c in CATEGORIES],
        is_thing=[c.is_thing for c in CATEGORIES],
        clip_pretrained=None if str(args.clip_pretrained).lower() == "none" else args.clip_pretrained,
        **parse_overrides(args.set),
    )
    model.to(device)
    counts = model.state_summary()
    logger.info("trainable parameters %.2fM, frozen %.2fM", counts["trainable"] / 1e6, counts["frozen"] / 1e6)
    use_memory = not args.no_memory

    # --- optimizer and schedule (SEEM: AdamW; x0.1 at 88.9% and 96.3% of training) -------------------
    optimizer = build_adamw(model, lr=args.lr, weight_decay=args.weight_decay)
    first = int(0.889 * args.steps)
    scheduler = warmup_multistep_schedule(
        optimizer,
        milestones=[first, max(first + 1, int(0.963 * args.steps))],
        warmup_steps=args.warmup_steps,
        warmup_factor=0.01,
    )

    def run_eval(max_clicks: int) -> dict[str, float]:  # point-first NoC, text referring, PQ
        inter = evaluate_interactive(
            model, val_samples, first_prompts=("point",), max_clicks=max_clicks, use_memory=use_memory
        )["point"]
        refer = evaluate_referring(model, val_samples, mode="text")
        return {
            "noc85": inter.noc85,
            "noc90": inter.noc90,
            "iou1": inter.iou1,
            **{f"referring_{k}": v for k, v in refer.as_dict().items()},
            **evaluate_generic(model, val_samples),
        }

    # --- resume, then the loop -----------------------------------------------------------------
    run = TrainingRun.start(
        model,
        optimizer=optimizer,
        scheduler=scheduler,
        options=options,
        run_dir=run_dir,
        dist=dist,
        args=vars(args),
        checkpoint_extra={"vocabulary": model.vocabulary, "is_thing": model.is_thing},
    )
    train_loader = build_train_loader(
        train_set,
        batch_size=args.batch_size,
        dist=dist,
        seed=args.seed,
        start_step=run.step,
        num_workers=args.num_workers,
        collate_fn=collate,
    )
    model.train()
    for batch in run.progress(train_loader, desc="seem"):  # until --steps or the time budget
        batch = batch.to(device, non_blocking=True)
        prompts = batch.extras["prompts"].to(device)
        prompt_targets = batch.extras["prompt_targets"]
        with autocast(device, args.precision):
            image = model.encode_image(batch.images)  # the image is encoded once per step
            for _ in range(batch.extras["rounds"]):  # SEEM: n ~ U{0..5} rounds without gradients
                with torch.no_grad():
                    out = model.decode(image.detached(), prompts, use_memory=use_memory)
                answers = answer_masks(out.answers(), image.image_size, image.padded)
                prompts = simulate_next_round(
                    prompts, answers, prompt_targets, clickable=batch.extras["clickable"].to(device)
                )
            outputs = model.decode(image, prompts, use_memory=use_memory)  # the one pass with gradients
            losses = model.losses(outputs, batch.targets, [t.to(device) for t in prompt_targets])
        loss = sum(losses.values(), torch.zeros((), device=device))
        grad_norm = backward_step(
            loss, optimizer=optimizer, scaler=run.scaler, max_norm=args.clip_grad or None
        )
        scheduler.step()
        run.end_step(loss, losses, lr=optimizer.param_groups[0]["lr"], grad_norm=grad_norm)
        if run.eval_due():
            run.evaluate(lambda: run_eval(max_clicks=5))
        if run.checkpoint_due():
            run.save_checkpoint()

    # --- final evaluation and checkpoint ------------------------------------------------------------
    wall = run.wall_seconds
    final = run_eval(max_clicks=args.eval_clicks)
    run.finish(final, wall_seconds=wall)
    if dist.is_main:
        summary = {"step": run.step, "wall_minutes": wall / 60.0, "use_memory": use_memory, "metrics": final}
        (run_dir / "final.json").write_text(json.dumps(summary, indent=2))
    cleanup_distributed()
    return 0
