"""The part of a training recipe that every set-prediction model shares: resume, loop, evaluate, save.

A zoo recipe (``segblocks train mask2former``, ``segblocks train possam``, ...) builds what differs
from paper to paper -- data, model, optimizer and learning-rate schedule, the evaluation -- and
hands them to :func:`fit`, which runs the rest identically for all of them:

1. resume from the newest checkpoint of the run (``--resume``);
2. the loop: forward under autocast, ``model.losses(outputs, targets)`` (deep supervision included),
   one backward step with full-model gradient clipping, the schedule's step, a record of the losses
   every ``log_every`` steps;
3. evaluation every ``eval_every`` steps and/or ``eval_every_min`` minutes, checkpoints every
   ``checkpoint_every`` steps;
4. a final evaluation and checkpoint when ``steps`` or the time budget is reached.

:func:`add_fit_arguments` adds the matching command-line options, so the recipes' flags agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from segblocks.engine.checkpoint import save_checkpoint
from segblocks.engine.distributed import DistInfo, unwrap_model, wrap_ddp
from segblocks.engine.logs import MetricLogger, progress_bar
from segblocks.engine.precision import PRECISIONS, autocast, backward_step, make_grad_scaler
from segblocks.engine.resume import resume
from segblocks.engine.samplers import build_train_loader
from segblocks.structures import Targets

__all__ = ["FitOptions", "FitResult", "add_fit_arguments", "fit", "parse_overrides"]

logger = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class FitOptions:
    """How :func:`fit` runs the loop.

    Attributes:
        steps: optimizer steps (an upper bound when ``time_budget_min`` is set).
        batch_size: images per step and process.
        time_budget_min: stop training after this many minutes of wall time (None: no budget).
        clip_grad: full-model gradient-norm clipping (0: off).
        precision: one of :data:`~segblocks.engine.PRECISIONS`.
        eval_every: steps between evaluations (0: only at the end).
        eval_every_min: also evaluate every this many minutes (None: off).
        log_every: steps between records of the training losses.
        checkpoint_every: steps between checkpoints (0: only at the end).
        resume: resume from the newest checkpoint of the run directory.
        seed: seed of the training sampler (the batch of step ``s`` is the same after a resume).
        num_workers: data-loader worker processes.
    """

    steps: int
    batch_size: int
    time_budget_min: float | None = None
    clip_grad: float = 0.01
    precision: str = "fp32"
    eval_every: int = 0
    eval_every_min: float | None = None
    log_every: int = 20
    checkpoint_every: int = 1000
    resume: bool = False
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {getattr(self, name)}")
        for name in ("time_budget_min", "eval_every_min"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}: expected a positive number of minutes or None, got {value}")
        if not self.clip_grad >= 0:
            raise ValueError(f"clip_grad: expected >= 0, got {self.clip_grad}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FitOptions:
        """The options from a namespace parsed with :func:`add_fit_arguments`.

        Args:
            args: the parsed options; each field of :class:`FitOptions` is read from the attribute
                of the same name.
        """
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class FitResult(Generic[R]):
    """What :func:`fit` ends with.

    Attributes:
        step: optimizer steps completed.
        wall_seconds: training wall time (resumed runs include the time before the resume).
        final: the result of the final evaluation.
    """

    step: int
    wall_seconds: float
    final: R


def add_fit_arguments(parser: argparse.ArgumentParser, *, out: str, eval_every: int, lr: float) -> None:
    """Add the options that every shapes-world recipe shares (the fields of :class:`FitOptions` and more).

    Args:
        parser: the recipe's parser (its own model options are added by the recipe).
        out: default run directory.
        eval_every: default steps between evaluations.
        lr: default AdamW learning rate.
    """
    p = parser
    p.add_argument("--image-size", type=int, default=96, help="shapes-world image side in pixels")
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--steps", type=int, default=20000, help="optimizer steps (upper bound)")
    p.add_argument("--time-budget-min", type=float, default=None, help="stop training after this wall time")
    p.add_argument("--lr", type=float, default=lr, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--clip-grad", type=float, default=0.01, help="full-model gradient-norm clipping (0: off)")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--log-every", type=int, default=20, help="steps between training-loss records")
    p.add_argument(
        "--eval-every", type=int, default=eval_every, help="steps between evaluations (0: only at the end)"
    )
    p.add_argument("--eval-every-min", type=float, default=None, help="also evaluate every this many minutes")
    p.add_argument("--val-images", type=int, default=100)
    p.add_argument("--train-images", type=int, default=100000, help="length of the (generated) train set")
    p.add_argument("--out", default=out, help="run directory (checkpoints, metrics.jsonl, final.json)")
    p.add_argument("--resume", action="store_true", help="resume from the newest checkpoint in --out")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="model config overrides")


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["num_queries=50", "mask_head=mlp"]`` -> ``{"num_queries": 50, "mask_head": "mlp"}``.

    Values are read as JSON when they parse (numbers, booleans, lists), else kept as strings.

    Args:
        pairs: ``FIELD=VALUE`` strings (the ``--set`` option).

    Returns:
        ``{FIELD: value}``.

    Raises:
        ValueError: on an item without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected FIELD=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _batch_targets(batch: Any) -> list[Targets]:
    return list(batch.targets)


def fit(
    model: nn.Module,
    *,
    train_set: Dataset[Any],
    collate_fn: Callable[[list[Any]], Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    options: FitOptions,
    run_dir: str | Path,
    dist: DistInfo,
    evaluate: Callable[[nn.Module], R],
    flatten: Callable[[R], Mapping[str, float]],
    targets: Callable[[Any], list[Targets]] = _batch_targets,
    checkpoint_extra: Mapping[str, Any] | None = None,
    args: Mapping[str, Any] | None = None,
    desc: str = "train",
) -> FitResult[R]:
    """Resume, train, evaluate and checkpoint ``model`` (see the module docstring for the steps).

    Args:
        model: a model on ``dist.device`` whose ``forward(images [B, 3, H, W])`` output goes to its
            ``losses(outputs, targets)`` (a dict of scalar losses, summed for the backward pass);
            a dataclass ``model.config``, when present, is stored in the checkpoints.
        train_set: the training set (an endless generated one for the shapes world).
        collate_fn: batches ``train_set`` items into an object with ``images``.
        optimizer: the optimizer (restored on resume).
        scheduler: the learning-rate schedule, stepped once per optimizer step.
        options: the :class:`FitOptions`.
        run_dir: where checkpoints, ``metrics.jsonl`` and ``args.json`` go.
        dist: this process's :class:`~segblocks.engine.DistInfo`.
        evaluate: runs the evaluation on the (unwrapped) model and returns its result.
        flatten: the result as flat ``{name: value}`` for the metric log.
        targets: a batch's training targets (default: ``batch.targets``), e.g. to drop classes.
        checkpoint_extra: JSON-serialisable data stored in every checkpoint.
        args: the recipe's options, written to ``args.json``.
        desc: label of the progress bar.

    Returns:
        The :class:`FitResult` (steps done, wall time, final evaluation).

    Raises:
        TypeError: when ``model`` has no ``losses`` method.
    """
    if not callable(getattr(model, "losses", None)):
        raise TypeError(f"model: expected a module with a losses(outputs, targets) method, got {type(model)}")
    run_dir = Path(run_dir)
    device = dist.device
    scaler = make_grad_scaler(options.precision, device)  # enabled for fp16 only
    config = getattr(model, "config", None)
    config_dict = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None  # type: ignore[arg-type]

    # --- resume ---------------------------------------------------------------------------
    ckpt = resume(
        options.resume,
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
        batch_size=options.batch_size,
        dist=dist,
        seed=options.seed,
        start_step=start,
        num_workers=options.num_workers,
        collate_fn=collate_fn,
    )
    elapsed_before = float(ckpt.extra.get("train_seconds", 0.0)) if ckpt is not None and ckpt.extra else 0.0
    log = MetricLogger(run_dir, enabled=dist.is_main, resume_step=start if ckpt else None)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if args is not None:
            (run_dir / "args.json").write_text(json.dumps(dict(args), indent=2))

    def run_eval(step: int, wall: float) -> R:
        result = evaluate(unwrap_model(ddp_model))
        values = dict(flatten(result))
        logger.info("step %d (%.1f min): %s", step, wall / 60.0, json.dumps(values))
        log.log(step, {**values, "wall_minutes": wall / 60.0}, prefix="val")
        return result

    def checkpoint(step: int, train_seconds: float) -> None:
        save_checkpoint(
            run_dir / "checkpoints",
            step=step,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            config=config_dict,
            extra={"train_seconds": train_seconds, **(checkpoint_extra or {})},
            dist=dist,
            keep_last=2,
        )

    # --- loop -----------------------------------------------------------------------------
    budget = options.time_budget_min * 60.0 if options.time_budget_min else math.inf
    t0 = time.perf_counter() - elapsed_before
    last_eval_wall = time.perf_counter() - t0
    step = start
    model.train()
    bar = progress_bar(train_loader, total=options.steps, initial=start, desc=desc, enabled=dist.is_main)
    for batch in bar:
        if step >= options.steps or time.perf_counter() - t0 >= budget:
            break
        images = batch.images.to(device, non_blocking=True)
        batch_targets = [t.to(device) for t in targets(batch)]
        with autocast(device, options.precision):
            outputs = ddp_model(images)
            losses: dict[str, Tensor] = unwrap_model(ddp_model).losses(outputs, batch_targets)  # type: ignore[operator]
        loss = sum(losses.values(), torch.zeros((), device=device))
        grad_norm = backward_step(
            loss, optimizer=optimizer, scaler=scaler, max_norm=options.clip_grad or None
        )
        scheduler.step()
        step += 1
        if step % options.log_every == 0 or step == 1:
            values: dict[str, Any] = {"loss": loss.detach(), "lr": optimizer.param_groups[0]["lr"]}
            values.update({k: v.detach() for k, v in losses.items() if not k[-1].isdigit()})  # not deep sup.
            if grad_norm is not None:
                values["grad_norm"] = grad_norm
            values["wall_minutes"] = (time.perf_counter() - t0) / 60.0
            log.log(step, values, prefix="train")
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        wall = time.perf_counter() - t0
        due_steps = options.eval_every and step % options.eval_every == 0
        due_time = options.eval_every_min and wall - last_eval_wall >= options.eval_every_min * 60.0
        if due_steps or due_time:
            run_eval(step, wall)
            last_eval_wall = time.perf_counter() - t0
        if options.checkpoint_every and step % options.checkpoint_every == 0:
            checkpoint(step, time.perf_counter() - t0)
    bar.close()

    # --- final evaluation and checkpoint ---------------------------------------------------
    wall = time.perf_counter() - t0
    final = run_eval(step, wall)
    checkpoint(step, wall)
    log.close()
    return FitResult(step=step, wall_seconds=wall, final=final)
